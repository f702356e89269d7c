"""`ray up` for real: cluster-onprem.yaml launched over SSH on loopback (head 127.0.0.2,
worker 127.0.0.3), used the way a lab uses it, and torn down with `ray down`.

What the test adds to the shipped YAML (substitutions only, see ``render``): the hosts,
user and key; this checkout and venv instead of ~/mer-uq (nothing to install on loopback,
so setup only checks the venv); a private sshd port through an ``ssh`` wrapper first on
PATH (Ray's ``auth`` has no port); disjoint ports for two nodes on one host; its own
RAY_TMPDIR and token; and 1 CPU on the head instead of 0, so that the one-worker loopback
cluster has two nodes that can embed (the shipped 0 is checked by test_cluster_yaml.py).

Finding what it started: sshd runs under a small supervisor that is a child subreaper
(prctl PR_SET_CHILD_SUBREAPER), so everything started over SSH, daemons that double-fork and
Ray agents that outlive their raylet included, stays in the supervisor's process tree
instead of being re-parented to init. What the test runs here itself (`ray up`, `ray down`,
their ssh control masters, the drivers) carries MER_UQ_LAUNCHER_TEST in its environment.
(The environment alone is not enough on the nodes: Ray's setproctitle overwrites part of
/proc/PID/environ.) At the end both sets are stopped by PID and the test asserts none is
left. Never ``ray stop``: other Ray instances share this machine.
"""

from __future__ import annotations

import contextlib
import getpass
import json
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sweep.slurm import descendants  # live processes below a PID, from /proc

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
MARK = "MER_UQ_LAUNCHER_TEST"
SONGS = 8  # generated songs embedded on the cluster
SWEEP_EPOCHS = 300  # per trial of the sweep whose worker is killed (no early stopping)
# Deadlines, generous: CI machines are shared, and under another job's load `ray up`, a
# fresh driver's ray.init and the trials all take several times longer than alone. Each
# wait polls its condition and, when the deadline passes, says what it waited for.
SSHD_S = 60
RAY_UP_S = 420
NODES_S = 300
DRIVER_S = 120  # one fresh driver asking which nodes are alive
EMBED_S = 420
WORKER_TRIAL_S = 420
SWEEP_S = 600
RAY_DOWN_S = 300
STOP_GRACE_S = 20.0


def wait_until(condition, timeout_s: float, what: str, interval_s: float = 0.3,
               alive=None) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout_s``. ``alive``
    (optional) is checked each round and fails at once with its message when false."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if alive is not None:
            ok, message = alive()
            assert ok, f"while waiting for {what}: {message}"
        assert time.monotonic() < deadline, f"waited {timeout_s:.0f} s for {what}"
        time.sleep(interval_s)


def _require_tools() -> None:
    missing = [t for t in (SSHD, "ssh", "ssh-keygen", "rsync") if not shutil.which(t)]
    if missing:
        reason = f"{missing} not installed (Debian: apt-get install openssh-server rsync)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs them")
        pytest.skip(reason)


def free_port(host: str = HEAD_IP) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def worker_port_block(size: int, taken: list[int]) -> int:
    """First port of ``size`` free ports below the kernel's ephemeral range (where
    free_port draws from), so that a node's worker ports never meet its other ports nor
    (``taken``: blocks already given out) the other node's."""
    rng = np.random.default_rng()
    while True:
        low = int(rng.integers(20_000, 30_000 - size))
        if any(abs(low - other) < size for other in taken):
            continue
        try:
            for port in range(low, low + size):
                with socket.socket() as s:
                    s.bind((HEAD_IP, port))
            taken.append(low)
            return low
        except OSError:
            continue


def marked_pids(mark: str) -> list[int]:
    """PIDs of live processes whose environment holds MARK=mark."""
    needle = f"{MARK}={mark}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                state = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    pids.append(int(environ.parent.name))
        except OSError:
            continue
    return sorted(pids)


SUPERVISOR = """
import ctypes, os, signal, sys, time
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
child = os.fork()
if child == 0:
    os.execv(sys.argv[2], sys.argv[2:])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(child))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:  # reap the exited: the test stops the tree, this only collects the dead
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    time.sleep(0.2)
"""


def stop_pids(pids_of, grace_s: float = STOP_GRACE_S) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_of():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while pids_of() and time.monotonic() < deadline:
            time.sleep(0.2)


@dataclass
class Sshd:
    supervisor: subprocess.Popen
    pid: int  # the listening sshd, the supervisor's first child
    port: int

    def tree(self) -> list[int]:
        """Everything started over SSH (module doc), sshd included."""
        return descendants(self.supervisor.pid) if self.supervisor.poll() is None else []


def start_sshd(folder: Path, mark: str) -> Sshd:
    """sshd on both loopback IPs with its own host key, user key and config, under the
    subreaper supervisor."""
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(folder / name)], check=True)
    shutil.copy(folder / "user_key.pub", folder / "authorized_keys")
    port = free_port(HEAD_IP)
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", f"ListenAddress {HEAD_IP}", f"ListenAddress {WORKER_IP}",
        f"HostKey {folder / 'host_key'}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
        "UsePAM no", "StrictModes no", f"SetEnv {MARK}={mark}", "",
    ]))
    with contextlib.suppress(PermissionError):  # privilege-separation dir sshd wants as root
        Path("/run/sshd").mkdir(exist_ok=True)
    log = open(folder / "sshd.log", "wb")  # noqa: SIM115 - sshd keeps it
    pid_file = folder / "sshd.supervised.pid"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(pid_file), SSHD, "-D", "-e", "-f", str(config)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((WORKER_IP, port), 1):
            return pid_file.exists()
        return False

    wait_until(listening, SSHD_S, f"sshd to listen on {WORKER_IP}:{port}",
               alive=lambda: (supervisor.poll() is None, (folder / "sshd.log").read_text()))
    sshd_pid = int(pid_file.read_text())
    assert sshd_pid in descendants(supervisor.pid), (folder / "sshd.log").read_text()
    wrapper = folder / "bin" / "ssh"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -p {port} "$@"\n')
    wrapper.chmod(0o755)
    return Sshd(supervisor, sshd_pid, port)


def render(folder: Path, token: str, mark: str) -> tuple[Path, int]:
    """The shipped cluster-onprem.yaml with this machine's substitutions (module doc)."""
    config = yaml.safe_load((REPO / "cluster-onprem.yaml").read_text())
    config["cluster_name"] = f"mer-uq-test-{mark[-6:]}"
    config["provider"].update(head_ip=HEAD_IP, worker_ips=[WORKER_IP])
    config["auth"] = {"ssh_user": getpass.getuser(),
                      "ssh_private_key": str(folder / "user_key")}
    config["file_mounts"] = {}  # the checkout is already "on" both loopback hosts
    config["setup_commands"] = [f"{VENV_BIN / 'python'} -c 'import mer_uq, sweep'"]
    gcs = free_port()
    env = (f"PATH={folder / 'bin'}:$PATH RAY_TMPDIR={folder} RAY_AUTH_TOKEN={token} "
           "AUTOSCALER_HEARTBEAT_TIMEOUT_S=10 ")

    worker_blocks: list[int] = []

    def node_ports(ip: str) -> str:
        low = worker_port_block(61, worker_blocks)
        dashboard = f" --dashboard-port={free_port()}" if ip == HEAD_IP else ""
        return (f" --node-ip-address={ip} --node-manager-port={free_port()}{dashboard}"
                f" --dashboard-agent-listen-port={free_port()}"
                f" --dashboard-agent-grpc-port={free_port()}"
                f" --runtime-env-agent-port={free_port()} --metrics-export-port={free_port()}"
                f" --min-worker-port={low} --max-worker-port={low + 60}")

    def rewrite(command: str, ip: str) -> str:
        assert "ray start" in command and "~/mer-uq" in command
        return (command.replace("~/mer-uq/.venv", str(VENV_BIN.parent))
                .replace("ray start", env + "ray start")
                .replace(":6379", f":{gcs}").replace("--port=6379", f"--port={gcs}")
                .replace("--object-manager-port=8076", f"--object-manager-port={free_port()}")
                .replace("--num-cpus=0", "--num-cpus=1")
                + node_ports(ip))

    config["head_start_ray_commands"] = [rewrite(c, HEAD_IP)
                                         for c in config["head_start_ray_commands"]]
    config["worker_start_ray_commands"] = [rewrite(c, WORKER_IP)
                                           for c in config["worker_start_ray_commands"]]
    rendered = folder / "cluster.yaml"
    rendered.write_text(yaml.safe_dump(config, sort_keys=False))
    return rendered, gcs


ALIVE_NODES = """
import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
print("alive nodes:", json.dumps([{"ip": n["NodeManagerAddress"], "id": n["NodeID"]}
                                  for n in ray.nodes() if n["Alive"]]))
"""


def alive_nodes(address: str, env: dict[str, str],
                timeout_s: float = DRIVER_S) -> list[dict[str, str]]:
    """The cluster's live nodes, seen by a fresh driver (as a user's would see them); []
    when the driver fails or takes longer than ``timeout_s`` (a loaded machine: ask again).

    The answer is the line marked "alive nodes:": Ray may print its own lines around it
    (after a node was killed: "raylet has lagging heartbeats ...")."""
    try:
        done = subprocess.run([sys.executable, "-c", ALIVE_NODES, address], env=env,
                              capture_output=True, text=True, timeout=max(5.0, timeout_s))
    except subprocess.TimeoutExpired:
        return []
    if done.returncode != 0:
        return []
    marked = [line for line in done.stdout.splitlines() if line.startswith("alive nodes: ")]
    assert marked, f"no 'alive nodes:' line in the driver's output:\n{done.stdout[-2000:]}"
    return json.loads(marked[-1].removeprefix("alive nodes: "))


def wait_for_nodes(address: str, env: dict[str, str], ips: set[str], timeout_s: float,
                   exclude_ids: set[str] = frozenset()) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = alive_nodes(address, env, min(DRIVER_S, deadline - time.monotonic()))
        if {n["ip"] for n in nodes if n["id"] not in exclude_ids} >= ips:
            return nodes
        assert time.monotonic() < deadline, (
            f"waited {timeout_s:.0f} s for nodes {sorted(ips)} to be alive; last seen: {nodes}")
        time.sleep(2)


def finished_on(out: Path) -> set[str]:
    """Node IPs of the trials finished so far (trial files are written atomically)."""
    from mer_uq.sweep_folder import read_trial_record

    return {read_trial_record(p)["node"]["node_ip"] for p in (out / "trials").glob("*.parquet")}


def _last_result(path: Path) -> dict:
    """The last complete line of a Tune result.json ({} before the first)."""
    with contextlib.suppress(OSError):
        for line in reversed(path.read_text().splitlines()):
            with contextlib.suppress(ValueError):
                return json.loads(line)
    return {}


def trial_training_on(ip: str, ray_tmp: Path, out: Path, epochs: int) -> bool:
    """A trial of the sweep is TRAINING on node ``ip``, with at least a fifth of its
    ``epochs`` still to go: the driver's live result.json of that trial (Tune writes one
    line per report, with the node's IP, under RAY_TMPDIR's driver_artifacts) says so, and
    its file is not published yet. An actor alive under the node's raylet is not enough:
    the sweep reuses actors, so a finished trial's actor lingers idle there, and killing
    the raylet then fails no trial (seen on a loaded machine: no retry to test)."""
    published = {p.stem for p in (out / "trials").glob("*.parquet")}
    for path in ray_tmp.glob("**/driver_artifacts/*/result.json"):
        last = _last_result(path)
        stem = path.parent.name.removesuffix(f"_{last.get('trial_id')}")
        if (last.get("node_ip") == ip and not last.get("done") and stem not in published
                and int(last.get("training_iteration", epochs)) <= 0.8 * epochs):
            return True
    return False


def worker_raylet(cluster_pids: list[int]) -> int:
    for pid in cluster_pids:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if cmd[0].endswith(b"/raylet") and f"--node_ip_address={WORKER_IP}".encode() in cmd:
                return pid
    raise AssertionError("no raylet of the worker node")


@pytest.fixture
def launched_cluster() -> Iterator[dict]:
    _require_tools()
    mark = secrets.token_hex(8)
    # Short path: Ray's socket paths must stay under 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="mq14-", dir="/tmp"))
    home_files = [Path.home() / n for n in ("ray_bootstrap_config.yaml", "ray_bootstrap_key.pem")]
    home_before = {p: p.read_bytes() for p in home_files if p.exists()}
    token = secrets.token_hex(16)
    env = {**os.environ, MARK: mark, "RAY_TMPDIR": str(folder), "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{folder / 'bin'}:{os.environ['PATH']}"}
    sshd = start_sshd(folder, mark)

    def started_here(keep_sshd: bool = False) -> list[int]:
        """Every live process the test started (module doc); the listening sshd unless
        ``keep_sshd``."""
        mine = set(sshd.tree()) | set(marked_pids(mark))
        return sorted(mine - {sshd.pid} if keep_sshd else mine)

    def stop_all() -> list[int]:
        """Stops everything, then the supervisor; returns what survived (nothing, or the
        supervisor's exit hands it to init)."""
        stop_pids(started_here)
        left = started_here()
        sshd.supervisor.terminate()
        sshd.supervisor.wait(timeout=10)
        return left

    rendered, gcs = render(folder, token, mark)
    login_ray = subprocess.run(
        ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-i", str(folder / "user_key"), f"{getpass.getuser()}@{HEAD_IP}",
         "bash --login -c -i 'true && source ~/.bashrc && command -v ray'"],
        env=env, capture_output=True, text=True, timeout=SSHD_S)
    if login_ray.stdout.strip():
        stop_all()
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"`ray` ({login_ray.stdout.strip()}) is on this account's login PATH: "
                    "`ray down` would stop every Ray instance on this machine")
    ray_bin = str(VENV_BIN / "ray")
    try:
        started = time.monotonic()
        up = subprocess.run([ray_bin, "up", "-y", "--no-config-cache", str(rendered)],
                            env=env, capture_output=True, text=True, timeout=RAY_UP_S)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        print(f"[launcher] ray up returned after {time.monotonic() - started:.0f} s")
        address = f"{HEAD_IP}:{gcs}"
        nodes = wait_for_nodes(address, env, {HEAD_IP, WORKER_IP}, timeout_s=NODES_S)
        print(f"[launcher] 2 nodes active {time.monotonic() - started:.0f} s after ray up")
        yield {"address": address, "env": env, "folder": folder, "sshd": sshd, "nodes": nodes}
        # `ray down` runs `ray stop` on the head through a login shell: on this shared host
        # that would stop every Ray here, so the login PATH has no `ray` (checked below) and
        # the test stops its nodes by PID first; `ray down` then releases both hosts (the
        # local provider's state) without waiting on a head that keeps relaunching workers.
        stop_pids(lambda: started_here(keep_sshd=True))
        started = time.monotonic()
        down = subprocess.run([ray_bin, "down", "-y", str(rendered)], env=env,
                              capture_output=True, text=True, timeout=RAY_DOWN_S)
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
        print(f"[launcher] ray down took {time.monotonic() - started:.0f} s")
    finally:
        stop_pids(lambda: started_here(keep_sshd=True))
        left = stop_all()
        for path in home_files:  # ray up copies these into the SSH user's home
            if path in home_before:
                path.write_bytes(home_before[path])
            else:
                path.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    assert left == [] and marked_pids(mark) == [], f"processes left behind: {left}"


def _tiny_musicfm(folder: Path) -> dict[str, Path]:
    import soundfile as sf
    import torch

    from mer_uq.musicfm import MelStats, MusicFMConfig
    from mer_uq.musicfm.checkpoint import save_checkpoint
    from mer_uq.musicfm.model import MusicFM

    config = MusicFMConfig(encoder_dim=32, encoder_depth=2, num_attention_heads=4,
                           intermediate_size=64, conv_dim=4)
    torch.manual_seed(0)
    save_checkpoint(MusicFM(config, MelStats(mean=6.77, std=18.4)).eval(), folder / "tiny.pt")
    (folder / "tiny.json").write_text(json.dumps(config.to_dict()))
    (folder / "stats.json").write_text(json.dumps({"melspec_2048_mean": 6.77,
                                                   "melspec_2048_std": 18.4}))
    audio = folder / "audio"
    audio.mkdir()
    rate = 24_000
    t = np.arange(rate * 2) / rate
    for song in range(1, SONGS + 1):
        wave = 0.3 * np.sin(2 * np.pi * (110 * song) * t)
        sf.write(audio / f"{song}.wav", np.stack([wave, wave[::-1]], 1).astype(np.float32), rate)
    return {"checkpoint": folder / "tiny.pt", "config": folder / "tiny.json",
            "stats": folder / "stats.json", "audio": audio}


def test_ray_up_sweep_worker_loss_embedding_ray_down(launched_cluster) -> None:
    from mer_uq.audio import load_audio
    from mer_uq.data.features import load_features
    from mer_uq.musicfm import MusicFMConfig, embed_song, load_musicfm
    from mer_uq.sweep_folder import read_trial_record
    from sweep.embed_output import embedding_nodes

    c = launched_cluster
    folder, env, address = c["folder"], c["env"], c["address"]

    # Ray Data across both nodes: 3 actors of 0.5 CPU on a 1-CPU head + 2-CPU worker, placed
    # by SPREAD (the head holds 2 at most); no song leaves before all 3 have loaded.
    model = _tiny_musicfm(folder)
    features = folder / "features.parquet"
    embed_started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sweep.embed", "--address", address, "--audio",
         str(model["audio"]), "--checkpoint", str(model["checkpoint"]), "--stats",
         str(model["stats"]), "--model-config", str(model["config"]), "--out", str(features),
         "--workers", "3", "--cpus-per-worker", "0.5", "--threads-per-worker", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=EMBED_S)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"[launcher] sweep.embed of {SONGS} songs: {time.monotonic() - embed_started:.0f} s")
    by_node = embedding_nodes(features)
    assert sorted(by_node) == list(range(1, SONGS + 1))
    assert set(by_node.values()) == {HEAD_IP, WORKER_IP}, by_node
    print(f"[launcher] embedded songs by node: {by_node}")
    reference = load_musicfm(model["checkpoint"], model["stats"],
                             MusicFMConfig.from_json(model["config"]))
    for song in range(1, SONGS + 1):
        direct = embed_song(reference, load_audio(model["audio"] / f"{song}.wav"))
        for layer in range(3):
            written = load_features(features, column=f"layer_{layer:02d}").rows([song])[0]
            np.testing.assert_allclose(written, direct[layer], rtol=1e-5, atol=1e-6)

    # A real sweep through the CLI; the worker's raylet is killed once one trial has finished
    # there and another runs there: that trial must come back (Tune retries it on the head,
    # which has a CPU here, or on the worker if the autoscaler restarted it) and nothing may
    # be lost or run twice. This comes last: whether the worker is back is not asserted.
    out = folder / "sweep"
    argv = [sys.executable, "-m", "sweep.run", "--address", address, "--storage-path",
            str(folder / "storage"), "--out", str(out), "--methods", "nll", "--seeds", "6",
            "--seeds-per-trial", "1", "--epochs", str(SWEEP_EPOCHS), "--steps-per-epoch", "8",
            "--early-stopping-patience", "1000"]
    with open(folder / "sweep.log", "w") as log:
        sweep_started = time.monotonic()
        sweep = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        raylet = worker_raylet(c["sshd"].tree())
        wait_until(lambda: (WORKER_IP in finished_on(out)
                            and trial_training_on(WORKER_IP, folder, out, SWEEP_EPOCHS)),
                   WORKER_TRIAL_S, "a trial to finish on the worker while another trains there",
                   alive=lambda: (sweep.poll() is None,
                                  "the sweep ended early:\n"
                                  + (folder / "sweep.log").read_text()[-3000:]))
        os.kill(raylet, signal.SIGKILL)
        killed = time.monotonic()
        print(f"[launcher] worker raylet killed {killed - sweep_started:.0f} s into the sweep")
        try:
            code = sweep.wait(timeout=SWEEP_S)
        except subprocess.TimeoutExpired:
            sweep.kill()
            sweep.wait()
            code = None
        assert code == 0, (f"sweep after the worker's loss: exit {code} (None: still running "
                           f"after {SWEEP_S} s)\n" + (folder / "sweep.log").read_text()[-3000:])
    output = (folder / "sweep.log").read_text()
    print(f"[launcher] sweep finished {time.monotonic() - killed:.0f} s after the kill")
    first_ids = {n["id"] for n in c["nodes"]}
    back = [n for n in alive_nodes(address, env) if n["ip"] == WORKER_IP
            and n["id"] not in first_ids]
    print(f"[launcher] worker node restarted by the autoscaler and alive: {bool(back)}")
    print(f"[launcher] sweep with the worker killed: {time.monotonic() - sweep_started:.0f} s")
    progress = "\n".join(line for line in output.splitlines() if line.startswith("[sweep]"))
    assert "; retrying" in output, progress[-3000:]  # Tune saw the loss and retried
    records = [read_trial_record(p) for p in sorted((out / "trials").glob("*.parquet"))]
    assert sorted((r["methods"], r["seeds"]) for r in records) == [
        (["nll"], [s]) for s in range(6)], records  # every trial once: none lost or twice
    assert WORKER_IP in {r["node"]["node_ip"] for r in records}
    # Complete predictions in every file: the same rows (test songs x members) in each.
    rows = {len(pd.read_parquet(p)) for p in (out / "trials").glob("*.parquet")}
    assert len(rows) == 1 and rows.pop() > 0, rows
    assert (out / "report" / "report.md").is_file()
    assert (out / "report" / "tables" / "cells.csv").is_file()
