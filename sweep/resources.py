"""What one trial asks of Ray, and whether the cluster can ever give it.

Ray does not reject a request no node can satisfy: the trial stays PENDING forever and the
sweep prints its header and then nothing. So the request is checked twice: for its form
before anything is imported (a second), and against the cluster's nodes right after
connecting (a trial must fit on ONE node). On an autoscaling cluster the node types the
autoscaler may still add count too; a request only they can satisfy is allowed, with a
line saying the trials wait for such a node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


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
