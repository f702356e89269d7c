"""A REAL two-node Ray cluster on loopback (127.0.0.2 head, 127.0.0.3 worker, one CPU
each), started by this test; the sweep joins it with --address and a shared
--storage-path, and the trial files prove that both nodes trained.

Each ``ray start --block`` runs in its own session, so teardown signals exactly the
processes this test started (never ``ray stop``, which would stop other people's Ray).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_sessions import session_members

from mer_uq.sweep_folder import read_trial_record

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def stop_session(process: subprocess.Popen) -> None:
    """SIGTERM the session (ray start --block shuts its node down), then SIGKILL what is
    left of it after a grace period."""
    for sig, grace in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 5.0)):
        for pid in session_members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while session_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    process.wait(timeout=10)


def wait_until_started(log: Path, process: subprocess.Popen, timeout_s: float) -> None:
    """``ray start --block`` logs this line once its node is up (for a worker: joined)."""
    deadline = time.monotonic() + timeout_s
    while "block forever" not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"node not up after {timeout_s} s: {log}"
        time.sleep(0.2)


@pytest.fixture
def two_node_cluster(tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0"}
    port = free_port(HEAD_IP)
    address = f"{HEAD_IP}:{port}"
    common = ["--block", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    started: list[subprocess.Popen] = []
    logs = []
    # Ray's socket paths must stay under 108 bytes: pytest's tmp_path is too deep.
    temp_dir = tempfile.mkdtemp(prefix="mer-uq-ray-", dir="/tmp")
    try:
        for name, args in (
            ("head", ["--head", f"--node-ip-address={HEAD_IP}", f"--port={port}",
                      "--include-dashboard=false", f"--temp-dir={temp_dir}"]),
            ("worker", [f"--address={address}", f"--node-ip-address={WORKER_IP}"]),
        ):
            log_path = tmp_path / f"{name}.log"
            log = open(log_path, "wb")  # noqa: SIM115 - closed in finally
            logs.append(log)
            started.append(subprocess.Popen([RAY, "start", *args, *common], env=env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True))
            wait_until_started(log_path, started[-1], timeout_s=120)
        yield address, env
    finally:
        for process in reversed(started):
            stop_session(process)
        for log in logs:
            log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_sweep_spreads_trials_over_both_nodes(two_node_cluster, tmp_path) -> None:
    address, env = two_node_cluster
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "sweep.run", "--address", address,
            "--storage-path", str(tmp_path / "shared-storage"), "--out", str(out),
            "--methods", "all", "--seeds", "1", "--epochs", "150", "--steps-per-epoch", "8",
            "--early-stopping-patience", "1000", "--mc-passes", "4", "--no-report"]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    files = sorted((out / "trials").glob("*.parquet"))
    assert len(files) == 4
    node_ips = {read_trial_record(p)["node"]["node_ip"] for p in files}
    assert node_ips == {HEAD_IP, WORKER_IP}
    assert any((tmp_path / "shared-storage").iterdir()), "Tune state not in --storage-path"
