"""Connecting the driver to Ray: a local single-node instance, or an existing cluster.

Why a module of its own: the environment Ray reads at start-up (usage statistics, token
authentication) must be fixed BEFORE the first ``ray.init`` or ``ray start``, identically on
every node, or nodes refuse each other. Ray 2.60 turns token authentication on by default
for new local clusters; we make that choice explicit so the driver, ``ray start`` and the
cluster launcher (cluster.yaml) all agree.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

# ======================================================================================
# Connecting the driver to Ray: a local single-node instance, or an existing cluster.
#
# Why a module of its own: the environment Ray reads at start-up (usage statistics, token
# authentication) must be fixed BEFORE the first ``ray.init`` or ``ray start``, identically on
# every node, or nodes refuse each other. Ray 2.60 turns token authentication on by default
# for new local clusters; we make that choice explicit so the driver, ``ray start`` and the
# cluster launcher (cluster.yaml) all agree.
# ======================================================================================

T = TypeVar("T")

# Environment defaults. A user who already exported one of these keeps their value.
RAY_ENV_DEFAULTS: dict[str, str] = {
    # No usage telemetry leaves the machine unless the user opts in with
    # RAY_USAGE_STATS_ENABLED=1.
    "RAY_USAGE_STATS_ENABLED": "0",
    # Token authentication, Ray 2.60's own default for a new local cluster, made explicit so
    # that every process of a cluster agrees (a disagreeing node cannot join). Opt out with
    # RAY_AUTH_MODE=disabled on EVERY node.
    "RAY_AUTH_MODE": "token",
    # Tune's classic console output, which RunConfig(verbose=0) silences completely (the
    # newer one still prints a configuration box); sweep.experiment prints progress instead.
    "RAY_AIR_NEW_OUTPUT": "0",
    # Tune's automatic per-trial loggers include TensorBoardX, whose import loads torch
    # in the driver (~3.5 s of a launch); sweep.experiment adds the CSV and JSON loggers back.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


class RayConnectionError(RuntimeError):
    """The requested Ray cluster cannot be reached."""


def apply_ray_env_defaults() -> None:
    """Set RAY_ENV_DEFAULTS in this process (inherited by Ray's workers and subprocesses).

    RAY_AUTH_MODE is the exception once Ray is imported: Ray caches the mode at import, and
    a process whose cached mode (unset = disabled) differs from the environment it hands
    to the GCS it starts cannot talk to that GCS. Left unset, a local ray.init turns token
    mode on itself, consistently, so nothing is lost by not setting it late.
    """
    ray_imported = "ray._raylet" in sys.modules
    for key, value in RAY_ENV_DEFAULTS.items():
        if key == "RAY_AUTH_MODE" and ray_imported:
            continue
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class RayConnection:
    """How the driver is attached to Ray, and whether it owns (and must stop) the instance."""

    address: str | None
    owns_instance: bool


def _check_listening(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast with a clear message when nothing listens at HOST:PORT.

    ``ray.init`` on a dead address retries for a long time and then prints a GCS error;
    a plain TCP probe answers in milliseconds.
    """
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise RayConnectionError(
            f"--address {address!r} is not 'auto' or HOST:PORT (e.g. 10.0.0.5:6379)"
        )
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout_s):
            return
    except OSError as err:
        raise RayConnectionError(
            f"no Ray cluster listens at {address} ({err.strerror or err}); start one with "
            "`ray start --head` or `ray up cluster.yaml`, or omit --address to run locally"
        ) from err


def check_address(address: str | None) -> None:
    """Raise RayConnectionError unless ``address`` is None, 'auto' or a live HOST:PORT."""
    if address is not None and address != "auto":
        _check_listening(address)


def connect(address: str | None, *, num_cpus: int | None = None) -> RayConnection:
    """Attach to Ray once per process.

    - An already initialised Ray (a notebook, the test session) is reused as it is: a new
      ``ray.init`` costs 4-6 s.
    - ``address=None`` starts a private single-node instance on this machine.
    - ``'auto'`` or ``HOST:PORT`` joins a running cluster.
    """
    apply_ray_env_defaults()
    import ray

    check_address(address)
    if ray.is_initialized():
        return RayConnection(address=address, owns_instance=False)
    try:
        ray.init(
            address=address,
            num_cpus=num_cpus if address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=True,
            logging_level="ERROR",
        )
    except ConnectionError as err:
        raise RayConnectionError(
            f"could not join the Ray cluster at --address {address}: {err}"
        ) from err
    return RayConnection(address=address, owns_instance=True)


def disconnect(connection: RayConnection) -> None:
    """Stop Ray only if this process started the connection."""
    import ray

    if connection.owns_instance and ray.is_initialized():
        ray.shutdown()


@contextmanager
def in_background(work: Callable[[], T]) -> Iterator[Future[T]]:
    """Run ``work`` in a thread during the block (e.g. around ``connect``); the block's
    end waits for it, and ``.result()`` gives its value or raises its error.

    Starting and stopping Ray is mostly waiting (measured on 2 cores: ray.init ~4 s of
    wall time for 0.2 s of the driver's CPU; ray.shutdown ~1.3 s), so the driver's own
    work (loading data, importing Ray Tune or the report) fits in it.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="meanwhile") as pool:
        yield pool.submit(work)


# Environment variables Ray Tune (tune/execution/class_cache.py: the AWS keys) and Ray's
# WandbLoggerCallback (WANDB_API_KEY) copy into the runtime_env of the actors they create.
# Ray writes every runtime env it creates, values included, to the session's
# logs/runtime_env_agent.log (runtime-env env vars are not secret in Ray 2.60), so these
# must not be in the driver's environment while Tune creates actors.
SECRET_ENV_VARS: tuple[str, ...] = (
    "WANDB_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)  # fmt: skip


@contextmanager
def secrets_withheld() -> Iterator[None]:
    """Hide SECRET_ENV_VARS from this process while Tune runs, and restore them after.

    Nothing is lost: a local Ray's workers inherit the environment the driver had at
    ``ray.init`` (raylet -> workers), and a cluster node's workers get credentials from that
    node's own environment or credential files (docs/sweep.md). What changes is only that
    Ray never receives the values as runtime-env data, so it cannot log them.
    """
    saved = {k: os.environ.pop(k) for k in SECRET_ENV_VARS if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


# ======================================================================================
# What one trial asks of Ray, and whether the cluster can ever give it.
#
# Ray does not reject a request no node can satisfy: the trial stays PENDING forever and the
# sweep prints its header and then nothing. So the request is checked twice: for its form
# before anything is imported (a second), and against the cluster's nodes right after
# connecting (a trial must fit on ONE node). On an autoscaling cluster the node types the
# autoscaler may still add count too; a request only they can satisfy is allowed, with a
# line saying the trials wait for such a node.
# ======================================================================================

class ResourceError(ValueError):
    """Per-trial resources Ray cannot schedule."""


@dataclass(frozen=True)
class TrialResources:
    cpus: float = 1.0
    gpus: float = 0.0

    def validate(self) -> None:
        """Fractional GPUs other than 1/k can leave trials unschedulable (seen on Ray 2.60)."""
        if self.cpus <= 0:
            raise ResourceError(f"--cpus-per-trial must be > 0, got {self.cpus:g}")
        if self.gpus < 0:
            raise ResourceError(f"--gpus-per-trial must be >= 0, got {self.gpus:g}")
        if 0 < self.gpus < 1 and abs(round(1 / self.gpus) * self.gpus - 1) > 1e-6:
            raise ResourceError(
                f"--gpus-per-trial {self.gpus:g} is not 1/k; use e.g. 0.5, 0.25, 0.2 or 0.1"
            )
        if self.gpus >= 1 and self.gpus != int(self.gpus):
            raise ResourceError(f"--gpus-per-trial above 1 must be whole, got {self.gpus:g}")

    def check_local_cpus(self, available: int | None = None) -> None:
        """A local Ray gets this machine's CPUs: a larger request can fail before Ray starts."""
        available = available if available is not None else os.cpu_count() or 1
        if self.cpus > available:
            raise ResourceError(
                f"--cpus-per-trial {self.cpus:g} exceeds this machine's {available} CPUs; a "
                f"trial would never start (use at most --cpus-per-trial {available})"
            )

    def as_tune(self) -> dict[str, float]:
        return {"cpu": self.cpus, "gpu": self.gpus}

    def fits(self, node: dict[str, float]) -> bool:
        """Whether one node with these totals (Ray's "CPU"/"GPU" keys) can run a trial."""
        return self.cpus <= node.get("CPU", 0) and self.gpus <= node.get("GPU", 0)

    def describe(self) -> str:
        return f"{self.cpus:g} CPU" + (f" + {self.gpus:g} GPU" if self.gpus else "")


def schedulability(
    request: TrialResources,
    nodes: list[dict[str, float]],
    node_types: list[dict[str, float]] | None,
    where: str,
) -> str | None:
    """None when a live node fits the request; a note when only an autoscaler node type
    does (the trials wait for it); ResourceError when nothing ever can."""
    if any(request.fits(n) for n in nodes):
        return None
    if node_types and any(request.fits(t) for t in node_types):
        return (f"no node of {where} has {request.describe()} yet; the autoscaler can add one, "
                "so the trials wait for it")
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    offer = f"{largest.get('CPU', 0):g} CPU, {largest.get('GPU', 0):g} GPU"
    raise ResourceError(
        f"no node of {where} can run a trial of {request.describe()} (its largest node has "
        f"{offer}{' and no node type of its autoscaler fits' if node_types else ''}); lower "
        "--cpus-per-trial / --gpus-per-trial"
    )


def check_cluster(request: TrialResources, address: str | None) -> None:
    """schedulability() against the connected Ray: its alive nodes and, where an
    autoscaler published its node types, those (max_count > 0). Prints the note, if any."""
    import ray

    nodes = [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]
    where = "this machine's Ray" if address is None else f"the cluster at {address}"
    note = schedulability(request, nodes, _autoscaler_node_types(), where)
    if note:
        print(f"[sweep] {note}", flush=True)


def _autoscaler_node_types() -> list[dict[str, float]] | None:
    """Per-node resources of the node types an autoscaler may launch; None without one.
    Read through Ray's internal state API (no public one in 2.60): any failure means
    "unknown", which only makes the check stricter, never wrong about live nodes."""
    try:
        from ray._private.state import state

        config: Any = state.get_cluster_config()
    except Exception:  # private API: absent or changed = no autoscaler info
        return None
    if config is None:
        return None
    return [dict(g.resources) for g in config.node_group_configs if g.max_count != 0]
