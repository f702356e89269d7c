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
from typing import TypeVar

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
    # newer one still prints a configuration box); sweep.progress prints progress instead.
    "RAY_AIR_NEW_OUTPUT": "0",
    # Tune's automatic per-trial loggers include TensorBoardX, whose import loads torch
    # in the driver (~3.5 s of a launch); sweep.tuning adds the CSV and JSON loggers back.
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
