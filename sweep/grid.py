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

from mer_uq.methods import EXTRA_METHODS, METHODS, PAPER_METHODS, training_groups
from mer_uq.sweep_folder import trial_stem


class PlanError(ValueError):
    """The requested methods or seeds do not describe a runnable sweep."""


def resolve_methods(text: str) -> tuple[str, ...]:
    """``all`` -> the paper's five; ``all+`` -> every known method; else a comma list."""
    if text == "all":
        return PAPER_METHODS
    if text == "all+":
        return (*PAPER_METHODS, *EXTRA_METHODS)
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
        return trial_stem(self.training, self.trial_id)

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


# Mean epochs a member trains (early stopping) per training key, measured at the paper's
# settings on the bundled features (15 seeds); `mean` counts ~4 epochs more for its 100
# MC-dropout passes. Only the launch order depends on these numbers, never a result.
TYPICAL_EPOCHS: dict[str, float] = {
    "mean": 22.0, "nll": 28.8, "mse": 20.3, "kld": 33.4,
    "nll_exact": 41.9, "kld_exact": 18.9, "beta_nll": 30.5, "rater_nll": 26.3,
}  # fmt: skip


def longest_first(plans: Sequence[TrialPlan]) -> list[TrialPlan]:
    """The plans in launch order, the most expected work (seeds x typical epochs) first.

    Trials start in this order as slots free up; on few slots the trial started last
    decides the wall time, so it should be a short one (longest-processing-time first:
    on the default study and 2 slots, kld + mse beside nll + mean instead of kld alone
    at the end). Ties keep the plan order, so the order is deterministic."""
    def work(plan: TrialPlan) -> float:
        return len(plan.seeds) * TYPICAL_EPOCHS.get(plan.training, 30.0)

    return sorted(plans, key=work, reverse=True)


# ---------------------------------------------------------------- data axes (issue 13)
# Raters per song and the training fraction are grid dimensions next to training key and
# seed chunk: every plan above is expanded into one trial per (k, fraction) cell. A sweep
# without them keeps today's plans, ids and files exactly.

ALL_RATERS = "all"


def resolve_raters(text: str | None) -> tuple[int | None, ...] | None:
    """``--raters 2,3,5,10`` (``all`` = every rater, written None) -> distinct values in
    the order given; None when the flag is absent."""
    if text is None:
        return None
    values: list[int | None] = []
    for item in (t.strip() for t in text.split(",")):
        if item == ALL_RATERS:
            values.append(None)
            continue
        try:
            k = int(item)
        except ValueError:
            raise PlanError(f"--raters {text}: {item!r} is not a count or 'all'") from None
        if k < 2:
            raise PlanError(f"--raters {text}: {k} is below 2 (one rating has no SD)")
        values.append(k)
    if not values or len(set(values)) != len(values):
        raise PlanError(f"--raters {text}: give distinct counts, e.g. 2,5,10 or 2,5,all")
    return tuple(values)


def resolve_fractions(text: str | None) -> tuple[float, ...] | None:
    """``--train-fraction 0.25,0.5,1`` -> distinct shares in (0, 1]; None when absent."""
    if text is None:
        return None
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise PlanError(f"--train-fraction {text}: not a comma list of numbers") from None
    bad = [v for v in values if not 0.0 < v <= 1.0]
    if bad or len(set(values)) != len(values):
        raise PlanError(f"--train-fraction {text}: give distinct shares in (0, 1], e.g. "
                        "0.25,0.5,1")
    return values


def axes_label(raters: int | None, fraction: float, subsample_seed: int) -> str:
    """File-name-safe label of one data cell: 'k5_frac0.5_sub0' ('kall' = every rater)."""
    return f"k{ALL_RATERS if raters is None else raters}_frac{fraction:g}_sub{subsample_seed}"


@dataclass(frozen=True)
class AxesTrialPlan(TrialPlan):
    """A trial of a data-axes sweep: the plan's training key and seeds on one data cell."""

    raters: int | None = None
    train_fraction: float = 1.0
    subsample_seed: int = 0

    @property
    def trial_id(self) -> str:
        cell = axes_label(self.raters, self.train_fraction, self.subsample_seed)
        return f"{seeds_label(self.seeds)}_{cell}"

    def data_record(self) -> dict[str, Any]:
        """The cell as mer_uq.data.subsample.DataAxes.to_dict spells it."""
        return {"raters": self.raters, "train_fraction": self.train_fraction,
                "subsample_seed": self.subsample_seed}

    def to_config(self) -> dict[str, Any]:
        return {**super().to_config(), "data": self.data_record()}


def with_data_axes(plans: Sequence[TrialPlan], raters: Sequence[int | None] | None,
                   fractions: Sequence[float] | None, subsample_seed: int = 0
                   ) -> list[TrialPlan]:
    """Each plan once per (k, fraction) cell; the plans unchanged when neither axis is
    given. A missing axis has one value: all raters, or the whole training split."""
    if raters is None and fractions is None:
        return list(plans)
    return [
        AxesTrialPlan(training=p.training, seeds=p.seeds, methods=p.methods, raters=k,
                      train_fraction=float(f), subsample_seed=subsample_seed)
        for p in plans
        for k in (raters if raters is not None else (None,))
        for f in (fractions if fractions is not None else (1.0,))
    ]
