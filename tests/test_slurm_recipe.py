"""The SLURM recipe's parts that need no cluster: the entry point's command line (resume),
the `ray start` / `ray symmetric-run` lines, the sbatch files. tests/test_slurm.py runs
the whole recipe on a real SLURM cluster."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.cli import parse_options
from sweep.folder_guards import ignored_resume_flags
from sweep.slurm import (
    SlurmJobError,
    entry_args,
    port_flags,
    ray_start_command,
    symmetric_command,
)

REPO = Path(__file__).resolve().parents[1]
SBATCH = [REPO / "slurm" / "study.sbatch", REPO / "slurm" / "embed.sbatch"]


def test_new_sweep_gets_a_folder_per_job_and_an_existing_one_is_resumed(tmp_path) -> None:
    assert entry_args("sweep.run", ["--methods", "nll"], "41") == [
        "--methods", "nll", "--out", str(Path("runs") / "slurm-41")]
    out = tmp_path / "study"
    assert entry_args("sweep.run", ["--seeds", "3", "--out", str(out)], "7") == [
        "--seeds", "3", "--out", str(out)]
    out.mkdir()
    (out / "trials").mkdir()  # trial files alone are not a record to resume from
    assert entry_args("sweep.run", [f"--out={out}"], "7") == [f"--out={out}"]
    (out / "sweep.json").write_text("{}")
    assert entry_args("sweep.run", ["--seeds", "3", "--out", str(out), "--no-report"], "7") == [
        "--no-report", "--resume", str(out)]
    # the requeued job's study flags (sweep.json records them) are not passed on, the Ray
    # resources and W&B flags are: sweep.run refuses flags beside --resume it would ignore
    resumed = entry_args("sweep.run", [
        "--methods", "nll", "--seeds", "4", "5", "--epochs", "2", "--keep-swap",
        "--gpus-per-trial", "0.5", f"--out={out}", "--cpus-per-trial=0.5", "--wandb"], "7")
    assert resumed == ["--gpus-per-trial", "0.5", "--cpus-per-trial=0.5", "--wandb",
                       "--resume", str(out)]
    assert ignored_resume_flags(parse_options(resumed)) == []
    assert entry_args("sweep.run", [f"--out={out}"], "7") == ["--resume", str(out)]
    assert entry_args("sweep.run", ["--resume", str(out)], "7") == ["--resume", str(out)]


def test_embedding_flags_pass_unchanged_and_address_is_the_jobs() -> None:
    flags = ["--audio", "a", "--checkpoint", "c", "--stats", "s", "--out", "f.parquet"]
    assert entry_args("sweep.embed", flags, "3") == flags
    for module in ("sweep.run", "sweep.embed"):
        for address in (["--address", "auto"], ["--address=10.0.0.1:6379"]):
            with pytest.raises(SlurmJobError, match="drop --address"):
                entry_args(module, address, "3")
    with pytest.raises(SlurmJobError, match=r"expected one of sweep\.run, sweep\.embed"):
        entry_args("sweep.search", [], "3")


def test_supervise_stops_what_the_command_leaves_behind(tmp_path) -> None:
    """A command that exits leaving a daemon (double fork, re-parented to the supervisor)
    behind: the supervisor stops it and returns the command's exit code."""
    pid_file = tmp_path / "daemon.pid"
    script = (f"import os, sys, time\nif os.fork() == 0:\n    if os.fork() == 0:\n"
              f"        open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
              f"        time.sleep(600)\n    os._exit(0)\nos.wait()\n"
              f"while not os.path.exists({str(pid_file)!r}): time.sleep(0.05)\nsys.exit(3)\n")
    done = subprocess.run([sys.executable, "-m", "sweep.slurm", "supervise", "--",
                           sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                       "PYTHONPATH": str(REPO)})
    assert done.returncode == 3, done.stderr
    daemon = int(pid_file.read_text())
    assert not Path(f"/proc/{daemon}").exists() or "Z" in Path(
        f"/proc/{daemon}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_outside_a_job_one_line_and_exit_2(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "sweep.slurm", "job", "--", "sweep.run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: SLURM_JOB_ID is not set: run this inside a SLURM job (sbatch "
        "slurm/study.sbatch), not on a login node"]


def _flag(command: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in command if a.startswith(f"--{name}="))


def test_ray_start_lines_own_every_port(monkeypatch) -> None:
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "6")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "2")
    head = ray_start_command(head=True, ip="127.0.0.1", gcs_port=41234, head_ip="127.0.0.1")
    worker = ray_start_command(head=False, ip="127.0.0.1", gcs_port=41234, head_ip="127.0.0.1")
    assert "--head" in head and "--port=41234" in head and "--head" not in worker
    assert "--address=127.0.0.1:41234" in worker
    for command in (head, worker):
        assert command[1] == "start" and "--block" not in command
        assert _flag(command, "num-cpus") == "6" and _flag(command, "num-gpus") == "2"
        ports = [int(_flag(command, n)) for n in (
            "node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")]
        low, high = int(_flag(command, "min-worker-port")), int(_flag(command, "max-worker-port"))
        assert high - low + 1 == 200 and 20_000 <= low < high < 30_000
        assert len(set(ports)) == len(ports) and not any(low <= p <= high for p in ports)
    assert "--dashboard-host=127.0.0.1" in head and "--dashboard-port" not in " ".join(worker)


def test_symmetric_run_line(monkeypatch) -> None:
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    entry = [sys.executable, "-m", "sweep.run", "--address", "127.0.0.1:41234"]
    command = symmetric_command("127.0.0.1:41234", 3, entry)
    assert command[:2] == ["srun", "--nodes=3"] and "--ntasks-per-node=1" in command
    ray = command.index("symmetric-run")
    # each node's symmetric-run under a supervisor that stops what its `ray stop` leaves
    assert command[ray - 4:ray - 1] == ["sweep.slurm", "supervise", "--"]
    split = command.index("--", ray)
    assert command[split + 1:] == entry
    options = command[ray + 1:split]
    assert options[:4] == ["--address", "127.0.0.1:41234", "--min-nodes", "3"]
    assert "--num-cpus=8" in options
    # what symmetric-run refuses: it sets these itself
    assert not [o for o in options if re.match(r"--(head|port|node-ip-address|block)\b", o)]
    assert port_flags("127.0.0.1", True)[-1].startswith("--dashboard-port=")


@pytest.mark.parametrize("path", SBATCH, ids=lambda p: p.name)
def test_sbatch_files(path: Path) -> None:
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    text = path.read_text()
    directives = dict(re.findall(r"^#SBATCH (--[a-z-]+)=?(\S*)", text, re.M))
    for edit in ("--partition", "--nodes", "--cpus-per-task", "--gpus-per-node", "--time"):
        assert re.search(rf"^#SBATCH {edit}=\S+ +# EDIT", text, re.M), edit
    assert directives["--ntasks-per-node"] == "1"  # one Ray node per node
    assert "--requeue" in directives and directives["--open-mode"] == "append"
    assert directives["--signal"].startswith("B:USR1@")  # sweep.slurm requeues on USR1
    module = "sweep.run" if path.name == "study.sbatch" else "sweep.embed"
    assert re.search(rf"^exec python -m sweep\.slurm job .* -- {module} \"\$@\"$", text, re.M)
