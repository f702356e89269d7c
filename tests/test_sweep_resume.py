"""An interrupted driver, then ``--resume``: finished trials are not rerun, the rest finish.

The driver runs as a subprocess in its own session (its own local Ray), so the test can
kill exactly it and everything it started, and nothing else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_sessions import session_members

from sweep.run import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL every process of the session ``process`` leads (it was started with
    start_new_session=True), including Ray helpers that outlive their driver."""
    for _ in range(10):  # again, in case a member was forking while we killed
        members = session_members(process.pid)
        if not members:
            break
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    process.wait(timeout=30)


def test_interrupted_driver_resumes_without_rerunning(ray_session, tmp_path) -> None:
    out = tmp_path / "sweep"
    trials = out / "trials"
    argv = [sys.executable, "-m", "sweep.run", "--methods", "nll,mse,kld", "--seeds", "1",
            "--max-concurrent", "1", "--epochs", "150", "--steps-per-epoch", "8",
            "--early-stopping-patience", "1000", "--mc-passes", "4",
            "--out", str(out), "--no-report"]
    driver = subprocess.Popen(argv, cwd=REPO, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not list(trials.glob("*.parquet")):
            assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.1)
    finally:
        kill_session(driver)
        driver.stderr.close()

    first = {p.name: p.stat().st_mtime_ns for p in trials.glob("*.parquet")}
    assert 1 <= len(first) < 3, f"interrupt came too late to test resuming: {first}"
    assert (out / "sweep.json").exists()

    assert main(["--resume", str(out), "--no-report"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in trials.glob("*.parquet")}
    assert set(after) == {"nll__seeds0.parquet", "mse__seeds0.parquet", "kld__seeds0.parquet"}
    assert {name: after[name] for name in first} == first, "a finished trial was rerun"
