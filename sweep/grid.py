"""The sweep's plan: which models get trained, with which seeds, in how many trials.

A trial is (training key, chunk of seeds). Methods that share a training key (``seeds`` and
``mc_dropout`` both read the mean-only MSE model) are trained once, and the seeds of one
chunk are trained as ONE vectorised model, so the default study (paper methods, 15 seeds,
one chunk per key) is only four trials. The trial id is derived from the seeds alone, so a
resumed sweep recognises the files of the trials that already finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mer_uq.methods import METHODS, training_groups

# The five methods of the paper's Table 1, in the paper's order.
PAPER_METHODS: tuple[str, ...] = ("seeds", "mc_dropout", "nll", "mse", "kld")


class PlanError(ValueError):
    """The requested methods or seeds do not describe a runnable sweep."""


def resolve_methods(text: str) -> tuple[str, ...]:
    """``all`` -> the paper's five; ``all+`` -> every known method; else a comma list."""
    if text == "all":
        return PAPER_METHODS
    if text == "all+":
        return (*PAPER_METHODS, *(m for m in METHODS if m not in PAPER_METHODS))
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise PlanError("--methods is empty; use all, all+ or a comma list of methods")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise PlanError(
            f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)} "
            "(or all, all+)"
        )
    return names


def resolve_seeds(values: Sequence[int]) -> tuple[int, ...]:
    """One number N -> seeds 0..N-1; several numbers -> exactly those seeds."""
    if not values:
        raise PlanError("--seeds needs a count N or a list of seeds")
    if len(values) == 1:
        count = values[0]
        if count <= 0:
            raise PlanError(f"--seeds must be a positive count, got {count}")
        return tuple(range(count))
    if any(s < 0 for s in values):
        raise PlanError(f"seeds must be >= 0, got {list(values)}")
    if len(set(values)) != len(values):
        raise PlanError(f"seeds must be distinct, got {list(values)}")
    return tuple(values)


def seeds_label(seeds: Sequence[int]) -> str:
    """Compact, file-name-safe label of a seed list: (0, 1, 2, 7) -> 'seeds0-2_7'."""
    runs: list[str] = []
    ordered = sorted(seeds)
    start = prev = ordered[0]
    for s in [*ordered[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        runs.append(f"{start}" if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return "seeds" + "_".join(runs)


@dataclass(frozen=True)
class TrialPlan:
    """One trial: train ``training`` for ``seeds`` as one model; reports ``methods``."""

    training: str
    seeds: tuple[int, ...]
    methods: tuple[str, ...]

    @property
    def trial_id(self) -> str:
        return seeds_label(self.seeds)

    @property
    def file_stem(self) -> str:
        """``<training>__<trial-id>``, the contract's trial file name without suffix."""
        return f"{self.training}__{self.trial_id}"

    def to_config(self) -> dict[str, Any]:
        """The plan as the trial sees it in its Tune config (plain JSON types)."""
        return {
            "training": self.training,
            "seeds": list(self.seeds),
            "methods": list(self.methods),
            "trial_id": self.trial_id,
            "file_stem": self.file_stem,
        }


def chunk_seeds(seeds: Sequence[int], per_trial: int | None) -> list[tuple[int, ...]]:
    """Consecutive chunks of ``per_trial`` seeds; ``None`` -> one chunk of all seeds."""
    if per_trial is None:
        return [tuple(seeds)]
    if per_trial <= 0:
        raise PlanError(f"--seeds-per-trial must be positive, got {per_trial}")
    return [tuple(seeds[i : i + per_trial]) for i in range(0, len(seeds), per_trial)]


def plan_trials(
    methods: Sequence[str], seeds: Sequence[int], seeds_per_trial: int | None
) -> list[TrialPlan]:
    """The trial grid: training key x seed chunk, each key once however many methods use it."""
    groups = training_groups(tuple(methods))
    return [
        TrialPlan(training=training, seeds=chunk, methods=tuple(reported))
        for training, reported in groups.items()
        for chunk in chunk_seeds(seeds, seeds_per_trial)
    ]
