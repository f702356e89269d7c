"""Running the study (``sweep.run``) or the embedding (``sweep.embed``) inside a SLURM job.

Why a module of its own: a SLURM allocation has no Ray in it. The job (``job``, run by
slurm/study.sbatch or slurm/embed.sbatch on the first allocated node) starts one Ray node on
every allocated node, runs the entry point on the first node against that cluster, and
stops every Ray process it started when the entry point ends, fails, or the job is
cancelled, preempted or runs out of time. Nothing is left behind on a node that other jobs
share, so nothing here ever runs ``ray stop`` (it stops every Ray instance of the account
on that node, other jobs' included).

Two ways to start Ray (``--ray-start``):

- ``explicit`` (default; for shared, multi-tenant nodes): one srun step, one task per
  node, each task a small supervisor (``node``) that picks free ports on its own node
  (GCS, node manager, object manager, agents, metrics, dashboard and a block
  of worker ports), runs ``ray start`` with them and this job's own auth token and
  RAY_TMPDIR, and stays alive as a child subreaper: every process Ray starts, daemons that
  double-fork included, stays below it. It stops that whole tree by PID (SIGTERM, then
  SIGKILL) when its stdin closes (the job closes it when the entry point is done; srun
  closes it when the job dies) or when SLURM signals it (scancel, time limit, preemption).
- ``symmetric``: Ray's own ``ray symmetric-run`` (Ray >= 2.49) on every node, each under
  the same kind of supervisor (``supervise``), which stops whatever its closing ``ray
  stop`` left. It refuses to start on a node where any Ray already runs, and that ``ray
  stop`` stops every Ray of the account on the node: for whole-node (``--exclusive``)
  allocations only.

Resume: a ``sweep.run`` job whose ``--out`` folder already holds a sweep record continues
it with ``--resume`` (finished trials are not rerun): a requeued job (same job id, so the
same default ``--out``) or a resubmitted one (same ``--out``) picks up where it stopped.
Only the flags a resume takes are passed on (the study's are in sweep.json; the job log
names those it left out).
``sweep.embed`` needs nothing: a rerun skips the songs already in its output.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from mer_uq.sweep_folder import SWEEP_JSON

ENTRY_POINTS = ("sweep.run", "sweep.embed")
RAY_STARTS = ("explicit", "symmetric")
NODE_UP = "[slurm] ray node up:"  # the line each node task prints once its Ray runs
WORKER_PORTS = 200  # ports per node for Ray's worker processes (one per worker process)
STOP_GRACE_S = 5.0  # SIGTERM -> SIGKILL, well inside SLURM's KillWait (30 s by default)
PR_SET_CHILD_SUBREAPER = 36


class SlurmJobError(RuntimeError):
    """The job cannot run as asked: one line, exit 2."""


# --- where we are --------------------------------------------------------------------------


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SlurmJobError(f"{name} is not set: run this inside a SLURM job (sbatch "
                            "slurm/study.sbatch), not on a login node")
    return value


def hostnames(nodelist: str) -> list[str]:
    """The node names of a SLURM node list (``n[1-3],gpu7``), as scontrol expands them."""
    done = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                          text=True, check=True)
    return done.stdout.split()


def node_address(node: str) -> str:
    """The IP address other nodes reach ``node`` at: its NodeAddr in SLURM's configuration
    (the address slurmctld itself uses), resolved; the node name where scontrol has none."""
    done = subprocess.run(["scontrol", "show", "node", node], capture_output=True, text=True)
    found = re.search(r"\bNodeAddr=(\S+)", done.stdout)
    return socket.gethostbyname(found.group(1) if found else node)


def free_ports(ip: str, count: int) -> list[int]:
    """``count`` distinct ports free on ``ip`` now (from the kernel's ephemeral range)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((ip, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_port_block(ip: str, size: int = WORKER_PORTS) -> int:
    """First port of ``size`` consecutive ports free on ``ip``, below the ephemeral range
    (so they never meet the ports free_ports hands out), at a random place so that two
    jobs on one node are unlikely to pick the same block at the same moment."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        low = rng.randrange(20_000, 30_000 - size)
        try:
            for port in range(low, low + size):
                with socket.socket() as s:
                    s.bind((ip, port))
            return low
        except OSError:
            continue
    raise SlurmJobError(f"no {size} consecutive free ports between 20000 and 30000 on {ip}")


def job_cpus_per_node() -> int:
    """CPUs each node task gets: --cpus-per-task, else the fewest CPUs of any node."""
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    counts = re.findall(r"(\d+)(?:\(x\d+\))?", _env("SLURM_JOB_CPUS_PER_NODE"))
    return min(int(c) for c in counts)


# --- the entry point's command line ------------------------------------------------------


def _flag_value(args: list[str], flag: str) -> tuple[int, str] | None:
    """(index, value) of ``flag VALUE`` or ``flag=VALUE`` in args; None when absent."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return i, args[i + 1]
        if arg.startswith(flag + "="):
            return i, arg.split("=", 1)[1]
    return None


def entry_args(module: str, args: Sequence[str], job_id: str) -> list[str]:
    """The entry point's flags as this job runs them (the module doc's resume rule).

    ``sweep.run``: without --out or --resume the sweep folder is runs/slurm-JOBID (a
    requeued job keeps its id, so it finds its folder again); an --out folder that already
    holds a sweep record becomes --resume. --address is the job's to set."""
    if module not in ENTRY_POINTS:
        raise SlurmJobError(f"entry point {module!r}: expected one of {', '.join(ENTRY_POINTS)}")
    args = list(args)
    if _flag_value(args, "--address") is not None or "--address" in args:
        raise SlurmJobError("drop --address: the job starts its own Ray cluster and sets it")
    if module != "sweep.run" or _flag_value(args, "--resume") is not None:
        return args
    found = _flag_value(args, "--out")
    if found is None:
        out = Path("runs") / f"slurm-{job_id}"
        args += ["--out", str(out)]
        found = (len(args) - 2, str(out))
    _, out = found
    if (Path(out) / SWEEP_JSON).is_file():
        kept, dropped = _split_resume_flags(args)
        print(f"[slurm] {out} holds a sweep: continuing it with --resume; its sweep.json "
              "fixes what the sweep trains" + (f" (not passed on: {' '.join(dropped)})"
                                               if dropped else ""), flush=True)
        return [*kept, "--resume", out]
    return args


def _split_resume_flags(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """The tokens of the flags a --resume still takes (Ray resources, W&B, the report:
    sweep.folder_guards.RESUME_OPTIONS) and the names of the others: a requeued job runs
    the same command line, whose study flags sweep.json already records, and sweep.run
    refuses flags beside --resume that it would ignore."""
    from sweep.cli import build_parser
    from sweep.folder_guards import RESUME_OPTIONS

    actions = build_parser()._option_string_actions
    kept: list[str] = []
    dropped: list[str] = []
    i = 0
    while i < len(args):
        flag, has_value = args[i].split("=", 1)[0], "=" in args[i]
        action = actions.get(flag)
        if action is None:  # not sweep.run's: passed on, for sweep.run to refuse in one line
            kept.append(args[i])
            i += 1
            continue
        end = i + 1
        if not has_value and action.nargs in (None, "?") and end < len(args):
            end += 1
        elif not has_value and action.nargs in ("+", "*"):
            while end < len(args) and not args[end].startswith("--"):
                end += 1
        if action.dest in RESUME_OPTIONS:
            kept += args[i:end]
        elif action.dest != "out":
            dropped.append(flag)
        i = end
    return kept, dropped


# --- one node: the supervisor of its Ray processes ---------------------------------------


def descendants(root: int) -> list[int]:
    """Live (not zombie) processes below ``root``, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _reap(keep: int | None = None) -> None:
    """Collect exited children (orphans re-parented here included), except ``keep``, whose
    exit code its Popen reads."""
    if keep is None:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        return
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ChildProcessError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            if fields[0] == "Z" and fields[1] == me and pid != keep:
                os.waitpid(pid, os.WNOHANG)


def stop_tree(grace_s: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM everything below this process, SIGKILL what is left after ``grace_s``;
    returns what survived both (nothing, unless a process is stuck in the kernel)."""
    me = os.getpid()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in descendants(me):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while True:
            _reap()
            if not descendants(me) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if sig == signal.SIGTERM and descendants(me):
            print(f"[slurm] {grace_s:.0f} s after SIGTERM, killing: "
                  f"{', '.join(_name(p) for p in descendants(me))}", flush=True)
    return descendants(me)


def _name(pid: int) -> str:
    with contextlib.suppress(OSError):
        return f"{Path(f'/proc/{pid}/comm').read_text().strip()}[{pid}]"
    return str(pid)


def _wait_listening(ip: str, port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection((ip, port), 1):
            return
        if time.monotonic() > deadline:
            raise SlurmJobError(f"{what} ({ip}:{port}) not listening after {timeout_s:.0f} s")
        time.sleep(0.2)


def port_flags(ip: str, head: bool) -> list[str]:
    """``ray start`` flags for every port a Ray node opens, each free on ``ip`` now (the
    GCS port excepted: the job picks it once for all nodes)."""
    ports = free_ports(ip, 7)
    low = worker_port_block(ip)
    flags = [f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
             f"--dashboard-agent-listen-port={ports[2]}",
             f"--dashboard-agent-grpc-port={ports[3]}",
             f"--runtime-env-agent-port={ports[4]}", f"--metrics-export-port={ports[5]}",
             f"--min-worker-port={low}", f"--max-worker-port={low + WORKER_PORTS - 1}"]
    if head:
        flags += ["--dashboard-host=127.0.0.1", f"--dashboard-port={ports[6]}"]
    return flags


def ray_start_command(*, head: bool, ip: str, gcs_port: int, head_ip: str) -> list[str]:
    """``ray start`` for this node with this job's ports (module doc), never blocking."""
    ray = str(Path(sys.executable).parent / "ray")
    command = [ray, "start", f"--node-ip-address={ip}",
               f"--num-cpus={os.environ.get('SLURM_CPUS_ON_NODE') or job_cpus_per_node()}",
               *port_flags(ip, head), "--disable-usage-stats"]
    if os.environ.get("SLURM_GPUS_ON_NODE"):  # what SLURM gave this job, not all on the node
        command.append(f"--num-gpus={os.environ['SLURM_GPUS_ON_NODE']}")
    if head:
        command += ["--head", f"--port={gcs_port}"]
    else:
        command.append(f"--address={head_ip}:{gcs_port}")
    return command


def symmetric_command(address: str, nodes: int, entry: list[str]) -> list[str]:
    """``ray symmetric-run`` on every node (module doc). Its nodes share one set of ports,
    picked free on this (the head) node: fine on whole nodes, where no other Ray runs."""
    ray = str(Path(sys.executable).parent / "ray")
    head_ip = address.rsplit(":", 1)[0]
    return [*_srun_nodes(nodes), sys.executable, "-m", "sweep.slurm", "supervise", "--",
            ray, "symmetric-run", "--address", address, "--min-nodes", str(nodes),
            f"--num-cpus={job_cpus_per_node()}", *port_flags(head_ip, True),
            "--disable-usage-stats", "--", *entry]


def _become_subreaper() -> threading.Event:
    """Keep every process started below this one in its tree (orphans included); the
    returned event is set by SIGTERM, SIGINT or SIGHUP (SLURM's ways to end a task)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SlurmJobError("prctl(PR_SET_CHILD_SUBREAPER) failed: cannot keep Ray's "
                            "processes below this one")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_supervised(command: Sequence[str]) -> int:
    """Run ``command`` below this process and, once it exits or SLURM signals this task,
    stop everything left below (``ray symmetric-run``'s closing ``ray stop`` may leave
    processes behind, and it is skipped when the task is signalled); its exit code."""
    stop = _become_subreaper()
    child = subprocess.Popen(list(command))
    while child.poll() is None and not stop.wait(0.5):
        _reap(keep=child.pid)  # a zombie left unreaped here would hold up `ray stop`
    left = stop_tree()
    if left:
        print(f"[slurm] still alive after SIGKILL: {left}", flush=True)
    return child.returncode if child.returncode is not None else 128 + signal.SIGTERM


def run_node(head_node: str, head_ip: str, gcs_port: int, timeout_s: float) -> int:
    """One node task of the srun step: start Ray here, keep it, stop all of it (module doc)."""
    stop = _become_subreaper()

    def until_stdin_closes() -> None:
        with contextlib.suppress(OSError):  # the raw descriptor: no buffer lock at exit
            while os.read(0, 4096):
                pass
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    node = _env("SLURMD_NODENAME")
    ip = node_address(node)
    head = node == head_node
    # Node-local and per job and node: Ray's sockets live here (paths under 108 bytes).
    tmp = Path(os.environ.get("TMPDIR") or "/tmp") / f"mer-uq-{_env('SLURM_JOB_ID')}-{node}"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["RAY_TMPDIR"] = str(tmp)
    try:
        if not head:
            _wait_listening(head_ip, gcs_port, timeout_s, f"the head's GCS on {head_node}")
        if stop.is_set():
            return 1
        started = subprocess.run(ray_start_command(head=head, ip=ip, gcs_port=gcs_port,
                                                   head_ip=head_ip),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if started.returncode != 0:
            print(f"[slurm] ray start failed on {node}:\n{started.stdout[-3000:]}", flush=True)
            return 1
        print(f"{NODE_UP} {node} {ip} ({'head' if head else 'worker'}; Ray's logs: "
              f"{tmp}/ray/session_latest/logs)", flush=True)
        while not stop.wait(0.5):
            _reap()
        return 0
    finally:
        left = stop_tree()
        print(f"[slurm] Ray stopped on {node}" + (f"; still alive: {left}" if left else ""),
              flush=True)


# --- the job: all nodes, then the entry point ---------------------------------------------


def _srun_nodes(count: int) -> list[str]:
    return ["srun", f"--nodes={count}", f"--ntasks={count}", "--ntasks-per-node=1",
            f"--cpus-per-task={job_cpus_per_node()}", "--kill-on-bad-exit=1"]


class _Job:
    """The running parts of one job and what to do with them on a signal."""

    def __init__(self) -> None:
        self.entry: subprocess.Popen | None = None
        self.signalled: int | None = None

    def on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGUSR1:  # sbatch --signal=B:USR1@SECONDS: time nearly up
            job_id = os.environ.get("SLURM_JOB_ID", "")
            print(f"[slurm] time limit near: requeueing job {job_id} (it resumes)", flush=True)
            subprocess.run(["scontrol", "requeue", job_id])
            return
        self.signalled = signum
        if self.entry is not None and self.entry.poll() is None:
            self.entry.send_signal(signal.SIGTERM)


def _forward(stream, nodes_up: list[str], all_up: threading.Event, total: int) -> None:
    """Copy the node tasks' output into the job's log; count the nodes that are up."""
    for line in stream:
        print(line, end="", flush=True)
        if line.startswith(NODE_UP):
            nodes_up.append(line.split()[4])
            if len(nodes_up) == total:
                all_up.set()
    all_up.set()  # the step ended: nobody waits for nodes that will not come


def run_job(ray_start: str, entry: Sequence[str], nodes_timeout_s: float) -> int:
    job_id = _env("SLURM_JOB_ID")
    nodes = hostnames(_env("SLURM_JOB_NODELIST"))
    head = _env("SLURMD_NODENAME")
    if not entry:
        raise SlurmJobError("no entry point: give sweep.run or sweep.embed and its flags")
    module, args = entry[0], entry_args(entry[0], entry[1:], job_id)
    head_ip = node_address(head)
    gcs_port = free_ports(head_ip, 1)[0]
    address = f"{head_ip}:{gcs_port}"
    # One token per job, handed to every node and the driver through srun's environment.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    command = [sys.executable, "-m", module, *args, "--address", address]
    print(f"[slurm] job {job_id}: {len(nodes)} nodes {nodes}, head {head} at {address}, "
          f"Ray started {ray_start}ly", flush=True)
    job = _Job()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, job.on_signal)
    if ray_start == "symmetric":
        tmp = Path(os.environ.get("TMPDIR") or "/tmp") / f"mer-uq-{job_id}"
        os.environ["RAY_TMPDIR"] = str(tmp)  # node-local on every node, through srun
        return subprocess.call(symmetric_command(address, len(nodes), command))
    started = time.monotonic()
    step = subprocess.Popen(
        [*_srun_nodes(len(nodes)), "--input=all", sys.executable, "-m", "sweep.slurm", "node",
         "--head-node", head, "--head-ip", head_ip, "--port", str(gcs_port),
         "--timeout", str(nodes_timeout_s)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    nodes_up: list[str] = []
    all_up = threading.Event()
    forwarder = threading.Thread(target=_forward, args=(step.stdout, nodes_up, all_up,
                                                        len(nodes)), daemon=True)
    forwarder.start()
    try:
        deadline = started + nodes_timeout_s
        while not all_up.wait(0.5) and not job.signalled and time.monotonic() < deadline:
            pass
        if len(nodes_up) < len(nodes) or job.signalled:
            print(f"[slurm] error: {len(nodes_up)} of {len(nodes)} Ray nodes up after "
                  f"{time.monotonic() - started:.0f} s; stopping", flush=True)
            return 1
        print(f"[slurm] {len(nodes)} Ray nodes up in {time.monotonic() - started:.1f} s; "
              f"running: python -m {module} {' '.join(args)}", flush=True)
        running = time.monotonic()
        job.entry = subprocess.Popen(command)
        code = job.entry.wait()
        print(f"[slurm] python -m {module} ended (exit {code}) after "
              f"{time.monotonic() - running:.1f} s", flush=True)
        return 128 + job.signalled if job.signalled else code
    finally:
        _stop_node_step(step, forwarder)


def _stop_node_step(step: subprocess.Popen, forwarder: threading.Thread) -> None:
    """End the srun step of node tasks: closing its stdin makes every node task stop its
    Ray (module doc); a step that does not end in time is terminated."""
    stopping = time.monotonic()
    with contextlib.suppress(OSError):
        step.stdin.close()
    try:
        step.wait(timeout=4 * STOP_GRACE_S + 20)
    except subprocess.TimeoutExpired:
        step.terminate()  # srun then kills the step's tasks
        step.wait(timeout=60)
    forwarder.join(timeout=5)
    print(f"[slurm] Ray stopped on all nodes in {time.monotonic() - stopping:.1f} s",
          flush=True)


# --- command line -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sweep.slurm", description=(
        "Inside a SLURM job: start Ray on every allocated node, run sweep.run or "
        "sweep.embed on it, stop Ray (see slurm/study.sbatch)."))
    commands = p.add_subparsers(dest="command", required=True)
    job = commands.add_parser("job", help="run in the batch script: all nodes, then the entry")
    job.add_argument("--ray-start", choices=RAY_STARTS, default="explicit",
                     help="explicit: our per-node start with per-job ports (shared nodes); "
                          "symmetric: `ray symmetric-run` (whole nodes only: it ends with "
                          "`ray stop`)")
    job.add_argument("--nodes-timeout", type=float, default=300.0,
                     help="seconds to wait for Ray to be up on every node")
    job.add_argument("entry", nargs=argparse.REMAINDER,
                     help="-- sweep.run|sweep.embed FLAGS...")
    supervise = commands.add_parser(
        "supervise", help="run a command, then stop every process left below it (internal)")
    supervise.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND...")
    node = commands.add_parser("node", help="one node task of the job's srun step (internal)")
    node.add_argument("--head-node", required=True)
    node.add_argument("--head-ip", required=True)
    node.add_argument("--port", type=int, required=True)
    node.add_argument("--timeout", type=float, default=300.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "supervise":
            return run_supervised(args.argv[1:] if args.argv[:1] == ["--"] else args.argv)
        if args.command == "node":
            return run_node(args.head_node, args.head_ip, args.port, args.timeout)
        entry = args.entry[1:] if args.entry[:1] == ["--"] else args.entry
        return run_job(args.ray_start, entry, args.nodes_timeout)
    except (SlurmJobError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
