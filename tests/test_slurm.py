"""The SLURM recipe for real: slurm/study.sbatch submitted with `sbatch` to a two-node SLURM
cluster that this test configures and starts on this machine (Debian's slurm-wlm and
munge), then stopped by PID.

The cluster: munged with its own key and socket, slurmctld and two slurmd nodes (n1 at
127.0.0.2, n2 at 127.0.0.3, each on its own port, two CPUs and one GPU each: a GRES whose
device file is /dev/null, so that SLURM hands out GPUs and Ray schedules fractional GPU
trials on a machine without one; torch sees no CUDA and trains on the CPU). Everything
lives in a temporary folder: configuration, state, spool, logs, the jobs' Ray temp
folders. No cgroups (proctrack/linuxproc, task/none): it runs as root in a container.

The shipped sbatch file runs unchanged; the command line overrides only what this
machine needs (CPUs per node, the time limit, the log path; no GPU for two of the jobs).

Finding what it started: each daemon runs under a child subreaper supervisor
(tests/test_cluster_launcher.py's), so the jobs' processes, whatever forks or daemonizes,
stay below their slurmd's supervisor. A job's processes are its slurmstepds (titled
``slurmstepd: [JOBID.STEP]``) and everything below them. The test records them while a
job runs and asserts that each of those PIDs is gone after the job ended (normally, by
failing, or by scancel), and that no process other than the daemons mentions the test
folder (every Ray process of a job names its temp folder there). Never ``ray stop``:
other Ray instances share this machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_cluster_launcher import SONGS, SUPERVISOR, _tiny_musicfm, descendants, stop_pids

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
NODES = {"n1": "127.0.0.1", "n2": "127.0.0.3"}  # n1 on lo's own address: see below
DAEMONS = ("munged", "slurmctld", "slurmd", "unshare")
TOOLS = ("munged", "munge", "slurmctld", "slurmd", "slurmstepd", "sbatch", "squeue",
         "scancel", "scontrol", "sinfo", "srun")
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
TINY = ["--methods", "nll", "--seeds-per-trial", "1", "--epochs", "2", "--steps-per-epoch", "8"]


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)


def _require() -> None:
    missing = [t for t in TOOLS if _tool(t) is None]
    reason = None
    if missing:
        reason = f"{missing} not installed (Debian: apt-get install slurm-wlm munge)"
    elif os.geteuid() != 0:
        reason = "slurmd must run as root to start jobs"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs the packages and runs as root")
        pytest.skip(reason)


def pid_namespaces() -> bool:
    """Whether this account may run a command in its own PID namespace (root in most
    containers; not where seccomp or a missing CAP_SYS_ADMIN forbids it)."""
    unshare = shutil.which("unshare")
    return bool(unshare) and subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", "true"], capture_output=True).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout_s: float, what: str,
             detail: Callable[[], str] = lambda: "") -> object:
    """Poll until ``condition()`` is truthy; fail saying what was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:.0f} s for {what}\n{detail()}")
        time.sleep(0.3)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class Daemon:
    name: str
    supervisor: subprocess.Popen
    pid: int  # the daemon itself, the supervisor's child

    def tree(self) -> list[int]:
        return descendants(self.supervisor.pid) if self.supervisor.poll() is None else []


@dataclass
class Cluster:
    folder: Path
    env: dict[str, str]
    daemons: list[Daemon] = field(default_factory=list)

    namespaced: bool = False

    def start(self, name: str, argv: list[str]) -> Daemon:
        log = open(self.folder / "log" / f"{name}.out", "wb")  # noqa: SIM115 - the daemon's
        pid_file = self.folder / f"{name}.supervised.pid"
        supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(pid_file), *argv],
                                      stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                      cwd=self.folder, start_new_session=True)
        pid = wait_for(lambda: pid_file.is_file() and int(pid_file.read_text()), 30,
                       f"the supervisor of {name} to start it")
        daemon = Daemon(name, supervisor, int(pid))
        self.daemons.append(daemon)
        return daemon

    def started_here(self) -> list[int]:
        return sorted({p for d in self.daemons for p in d.tree()})

    def job_pids(self, job_id: str) -> list[int]:
        """The job's slurmstepds and everything below them (module doc)."""
        steps = [p for p in self.started_here()
                 if re.match(rf"slurmstepd: \[{job_id}\.", cmdline(p))]
        return sorted({*steps, *(q for p in steps for q in descendants(p))})

    def strays(self) -> list[str]:
        """Processes other than the daemons that mention the test folder (every Ray process
        of a job names its temp folder there), wherever they hang in the process tree."""
        daemons = {d.supervisor.pid for d in self.daemons}
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            pid, command = int(proc.name), cmdline(int(proc.name))
            if (pid not in daemons and pid != os.getpid() and alive(pid)
                    and str(self.folder) in command and "PR_SET_CHILD_SUBREAPER" not in command
                    and Path(command.split(" ")[0]).name not in DAEMONS):
                found.append(f"{pid}: {command[:200]}")
        return found

    def run(self, *argv: str, ray_start: str = "explicit") -> str:
        done = subprocess.run(list(argv), env={**self.env, "MER_UQ_RAY_START": ray_start},
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
        return done.stdout

    def state(self, job_id: str) -> tuple[str, str]:
        """(JobState, ExitCode) from slurmctld (MinJobAge keeps ended jobs listed)."""
        out = self.run("scontrol", "show", "job", "-o", job_id)
        return (re.search(r"JobState=(\S+)", out).group(1),
                re.search(r"ExitCode=(\S+)", out).group(1))

    def log(self, job_id: str) -> str:
        path = self.folder / "shared" / f"job-{job_id}.out"
        return path.read_text(errors="replace") if path.is_file() else ""

    def submit(self, sbatch_args: list[str], sweep_args: list[str],
               ray_start: str = "explicit", script: str = "study.sbatch") -> str:
        out = self.run("sbatch", "--parsable", "--cpus-per-task=1", "--time=15",
                       f"--output={self.folder / 'shared' / 'job-%j.out'}", *sbatch_args,
                       str(REPO / "slurm" / script), *sweep_args,
                       ray_start=ray_start)
        return out.strip().split(";")[0]

    def wait_ended(self, job_id: str, timeout_s: float = 300) -> tuple[str, str]:
        wait_for(lambda: self.state(job_id)[0] in ENDED, timeout_s, f"job {job_id} to end",
                 lambda: self.log(job_id)[-3000:])
        return self.state(job_id)


def _slurm_conf(folder: Path, ctld_port: int, node_ports: dict[str, int]) -> str:
    nodes = [f"NodeName={name} NodeHostname={socket.gethostname()} NodeAddr={ip} "
             f"Port={node_ports[name]} CPUs=2 RealMemory=2000 Gres=gpu:1 State=UNKNOWN"
             for name, ip in NODES.items()]
    return "\n".join([
        "ClusterName=mqtest", "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={ctld_port}", f"SlurmdPort={min(node_ports.values())}",
        "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CredType=cred/munge",
        f"AuthInfo=socket={folder / 'munge' / 'socket'}",
        f"StateSaveLocation={folder / 'state'}", f"SlurmdSpoolDir={folder / 'spool'}/%n",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd-%n.pid'}",
        f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'log' / 'slurmd-%n.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "SwitchType=switch/none", "MpiDefault=none", "MailProg=/bin/true",
        "SchedulerType=sched/builtin", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core", "ReturnToService=2", "GresTypes=gpu",
        "KillWait=15", "MinJobAge=600", "InactiveLimit=0", "SlurmdTimeout=120",
        *nodes,
        f"PartitionName=gpu Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


@pytest.fixture
def slurm_cluster() -> Iterator[Cluster]:
    _require()
    # Short path: Ray's socket paths (under each job's temp folder here) stay < 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="s25-", dir="/tmp"))
    folder.chmod(0o755)
    for sub in ("munge", "state", "log", "shared", *(f"spool/{n}" for n in NODES)):
        (folder / sub).mkdir(parents=True)
    (folder / "munge").chmod(0o700)
    key = folder / "munge" / "key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf"), "TMPDIR": str(folder),
           "MER_UQ_VENV": str(VENV), "PYTHONPATH": os.pathsep.join(
               [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    for name in [k for k in env if k.startswith("SLURM_") and k != "SLURM_CONF"]:
        del env[name]  # a test run inside a SLURM job must not hand its job to ours
    # Each slurmd in its own PID namespace where allowed: a "node" then sees only its own
    # processes, as on a real cluster, so that `ray symmetric-run`'s closing `ray stop`
    # cannot reach any other Ray on this machine (and slurmd, the namespace's init, takes
    # every process of its node with it when stopped).
    cluster = Cluster(folder, env, namespaced=pid_namespaces())
    started = time.monotonic()
    try:
        socket_path = folder / "munge" / "socket"
        cluster.start("munged", [_tool("munged"), "-F", "-f", f"--socket={socket_path}",
                                 f"--key-file={key}", f"--log-file={folder / 'log/munged.log'}",
                                 f"--pid-file={folder / 'munge/pid'}",
                                 f"--seed-file={folder / 'munge/seed'}"])
        wait_for(lambda: subprocess.run([_tool("munge"), "-n", "-S", str(socket_path)],
                                        capture_output=True).returncode == 0, 30,
                 "munged to answer on its socket",
                 lambda: (folder / "log" / "munged.out").read_text())
        node_ports = {name: free_port() for name in NODES}
        (folder / "slurm.conf").write_text(_slurm_conf(folder, free_port(), node_ports))
        (folder / "gres.conf").write_text("".join(
            f"NodeName={name} Name=gpu File=/dev/null\n" for name in NODES))
        conf = str(folder / "slurm.conf")
        cluster.start("slurmctld", [_tool("slurmctld"), "-D", "-i", "-f", conf])
        for name in NODES:
            # In its namespace a supervisor is init (PID 1): orphans are re-parented to it,
            # and it reaps them (slurmd would leave them zombies, which `ray stop` waits on).
            namespace = ([shutil.which("unshare"), "--pid", "--fork", "--mount-proc",
                          sys.executable, "-c", SUPERVISOR, str(folder / f"{name}.ns.pid")]
                         if cluster.namespaced else [])
            cluster.start(f"slurmd-{name}", [*namespace, _tool("slurmd"), "-D", "-N", name,
                                             "-f", conf])

        def idle() -> bool:
            for d in cluster.daemons:
                assert d.supervisor.poll() is None and alive(d.pid), (
                    f"{d.name} exited:\n" + (folder / "log" / f"{d.name}.out").read_text())
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], env=env,
                                 capture_output=True, text=True).stdout
            return sorted(out.split()) == sorted([*NODES, *["idle"] * len(NODES)])

        wait_for(idle, 90, "both slurmd nodes idle in sinfo", lambda: subprocess.run(
            ["scontrol", "show", "node"], env=env, capture_output=True, text=True).stdout)
        print(f"[slurm-test] slurm up (munged, slurmctld, 2 slurmd, PID namespaces: "
              f"{cluster.namespaced}): "
              f"{time.monotonic() - started:.1f} s")
        yield cluster
    finally:
        stopping = time.monotonic()
        stop_pids(cluster.started_here)
        left = cluster.started_here()
        for d in cluster.daemons:
            with contextlib.suppress(ProcessLookupError):
                d.supervisor.terminate()
            d.supervisor.wait(timeout=10)
        strays = cluster.strays()
        print(f"[slurm-test] teardown (daemons stopped by PID): "
              f"{time.monotonic() - stopping:.1f} s")
        shutil.rmtree(folder, ignore_errors=True)
    assert left == [] and strays == [], f"processes left behind: {left} {strays}"


def _trial_files(sweep: Path) -> dict[str, tuple[int, int]]:
    """Trial file -> (inode, mtime_ns): a rerun trial would write a new file."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (sweep / "trials").glob("*.parquet")}


def _assert_complete(sweep: Path, seeds: int) -> None:
    from mer_uq.sweep_folder import read_trial_record

    records = [read_trial_record(p) for p in sorted((sweep / "trials").glob("*.parquet"))]
    assert sorted((r["methods"], r["seeds"]) for r in records) == [
        (["nll"], [s]) for s in range(seeds)], records
    assert (sweep / "report" / "report.md").is_file()
    assert (sweep / "report" / "tables" / "cells.csv").is_file()


def _times(cluster: Cluster, job_id: str) -> dict[str, float]:
    """The job's steps in seconds: slurmctld's times (whole seconds) and the job log's."""
    out = cluster.run("scontrol", "show", "job", "-o", job_id)

    def stamp(name: str) -> float:
        text = re.search(rf"{name}=(\S+)", out).group(1)
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))

    log = cluster.log(job_id)

    def logged(pattern: str) -> float:
        found = re.findall(pattern, log)
        assert found, f"no {pattern!r} in the log of job {job_id}:\n{log[-3000:]}"
        return float(found[-1])

    return {"sbatch to start": stamp("StartTime") - stamp("SubmitTime"),
            "Ray up": logged(r"Ray nodes up in ([\d.]+) s"),
            "entry point": logged(r"ended \(exit \d+\) after ([\d.]+) s"),
            "Ray teardown": logged(r"Ray stopped on all nodes in ([\d.]+) s"),
            "sbatch to end": stamp("EndTime") - stamp("SubmitTime")}


def _scontrol_seconds(cluster: Cluster, job_id: str) -> float:
    """EndTime - SubmitTime of an ended job, from slurmctld (whole seconds)."""
    out = cluster.run("scontrol", "show", "job", "-o", job_id)
    stamps = [time.mktime(time.strptime(re.search(rf"{name}=(\S+)", out).group(1),
                                        "%Y-%m-%dT%H:%M:%S")) for name in ("EndTime", "SubmitTime")]
    return stamps[0] - stamps[1]


def _print_times(what: str, times: dict[str, float]) -> None:
    print(f"[slurm-test] {what}: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))


def test_sbatch_study_scancel_resume_failure(slurm_cluster: Cluster) -> None:
    c = slurm_cluster
    shared = c.folder / "shared"
    done_sweep, cut_sweep = shared / "study", shared / "cut"

    # A: the study with fractional GPUs (two trials share each node's GPU), and B: a longer
    # one without GPUs (cancelled below), side by side: two Ray clusters on the same two
    # nodes, each on its own ports.
    job_a = c.submit([], [*TINY, "--seeds", "4", "--gpus-per-trial", "0.5",
                          "--cpus-per-trial", "0.5", "--out", str(done_sweep)])
    job_b = c.submit(["--gpus-per-node=0"], [*TINY, "--seeds", "6", "--epochs", "5",
                                             "--out", str(cut_sweep)])
    # B mid-sweep: its Ray up on both nodes and a first trial file written.
    wait_for(lambda: list((cut_sweep / "trials").glob("*.parquet"))
             or c.state(job_b)[0] in ENDED, 300, f"job {job_b}'s first trial file",
             lambda: c.log(job_b)[-3000:])
    assert c.state(job_b)[0] == "RUNNING", c.log(job_b)[-3000:]
    running_b = c.job_pids(job_b)
    ray_b = [p for p in running_b if re.search(r"raylet|gcs_server|ray::|default_worker",
                                                 cmdline(p))]
    assert ray_b, [cmdline(p)[:120] for p in running_b]
    c.run("scancel", job_b)
    cancelled = time.monotonic()
    assert c.wait_ended(job_b)[0] == "CANCELLED"
    wait_for(lambda: not [p for p in running_b if alive(p)] and not c.job_pids(job_b), 60,
             f"job {job_b}'s processes to end after scancel",
             lambda: "\n".join(cmdline(p)[:200] for p in running_b if alive(p)))
    print(f"[slurm-test] scancel mid-sweep: {len(running_b)} processes of the job "
          f"({len(ray_b)} Ray) gone {time.monotonic() - cancelled:.1f} s after scancel")
    kept = _trial_files(cut_sweep)
    assert 0 < len(kept) < 6, kept

    # A ends normally: every trial file and the report; nothing of it left.
    state = c.wait_ended(job_a)
    assert state == ("COMPLETED", "0:0"), (state, c.log(job_a)[-3000:])
    _assert_complete(done_sweep, 4)
    from mer_uq.sweep_folder import read_trial_record

    nodes_used = {read_trial_record(p)["node"]["node_id"]
                  for p in (done_sweep / "trials").glob("*.parquet")}
    assert len(nodes_used) == 2, nodes_used  # the trials ran on both Ray nodes
    _print_times("job A (4 trials of 0.5 GPU, beside job B)", _times(c, job_a))
    wait_for(lambda: not c.job_pids(job_a), 60, f"job {job_a}'s processes to end")

    # B resubmitted with the same --out: continues with --resume, reruns nothing finished.
    # It runs under `ray symmetric-run`, on n1 alone (whole node), where each slurmd has its
    # own PID namespace: symmetric-run ends with `ray stop`, which must see only this node.
    # Its head is found by its address among the host's interface addresses: 127.0.0.1.
    # C, beside it on n2, fails (an unknown method, found once Ray is up).
    symmetric = c.namespaced
    b2_nodes = ["--nodes=1", "--nodelist=n1", "--exclusive", "--cpus-per-task=2"]
    job_b2 = c.submit(["--gpus-per-node=0", *(b2_nodes if symmetric else [])],
                      [*TINY, "--seeds", "6", "--epochs", "5", "--out", str(cut_sweep)],
                      ray_start="symmetric" if symmetric else "explicit")
    job_c = c.submit(["--gpus-per-node=0", "--nodes=1", "--nodelist=n2"],
                     ["--methods", "no_such_method", "--out", str(shared / "failed")])
    # E, on n2 too: slurm/embed.sbatch embeds generated songs with a tiny random MusicFM
    # (one model actor of 0.5 CPU: the decoding tasks need the other half of the 1 CPU).
    model = _tiny_musicfm(c.folder / "shared")
    features = shared / "features.parquet"
    job_e = c.submit(["--gpus-per-node=0", "--nodes=1", "--nodelist=n2"], [
        "--audio", str(model["audio"]), "--checkpoint", str(model["checkpoint"]), "--stats",
        str(model["stats"]), "--model-config", str(model["config"]), "--out", str(features),
        "--workers", "1", "--cpus-per-worker", "0.5", "--threads-per-worker", "1"],
        script="embed.sbatch")
    assert c.wait_ended(job_b2) == ("COMPLETED", "0:0"), c.log(job_b2)[-3000:]
    if symmetric:
        assert "Running command on head node" in c.log(job_b2), c.log(job_b2)[-3000:]
        stopped = re.findall(r"Stopped all \d+ Ray processes|Stopped only .*", c.log(job_b2))
        print(f"[slurm-test] job B resumed under ray symmetric-run ({6 - len(kept)} trials "
              f"left): sbatch to end {_scontrol_seconds(c, job_b2):.0f} s; its ray stop: "
              f"{stopped}")
    else:
        _print_times(f"job B resumed ({6 - len(kept)} trials left)", _times(c, job_b2))
        print("[slurm-test] no PID namespaces here: `ray symmetric-run` was not tried (its "
              "`ray stop` would stop every Ray instance on this machine)")
    assert "continuing it with --resume" in c.log(job_b2)
    assert f"({len(kept)} already finished)" in c.log(job_b2), c.log(job_b2)[-3000:]
    _assert_complete(cut_sweep, 6)
    after = _trial_files(cut_sweep)
    assert {name: after[name] for name in kept} == kept  # finished trials not rerun
    state_c = c.wait_ended(job_c)
    assert state_c[0] == "FAILED" and state_c[1] != "0:0", (state_c, c.log(job_c)[-3000:])
    assert "no_such_method" in c.log(job_c), c.log(job_c)[-3000:]

    assert c.wait_ended(job_e) == ("COMPLETED", "0:0"), c.log(job_e)[-3000:]
    from sweep.embed_output import embedding_nodes

    assert sorted(embedding_nodes(features)) == list(range(1, SONGS + 1))
    _print_times(f"job E (sweep.embed, {SONGS} songs, 1 node)", _times(c, job_e))

    for job in (job_a, job_b, job_b2, job_c, job_e):
        wait_for(lambda j=job: not c.job_pids(j), 60, f"job {job}'s processes to end")
    assert c.strays() == []  # no Ray process of any job, wherever it may have gone
