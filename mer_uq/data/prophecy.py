"""How many raters per song would a target reliability take? The Spearman-Brown prophecy,
from a single-rater reliability, with its bootstrap interval carried through honestly.

With k raters per song a split-half estimate gives the reliability rho_k of the k-rater
statistic. Stepping it down with Spearman-Brown gives the single-rater reliability

    rho_1 = rho_k / (k - (k - 1) rho_k),

and the prophecy solves rho_m = m rho_1 / (1 + (m - 1) rho_1) = R for the raters needed:

    m(R) = R (1 - rho_1) / (rho_1 (1 - R)).

m decreases in rho_1, so an interval [lo, hi] of rho_1 maps to [m(hi), m(lo)]. Where
rho_1 <= 0 no number of raters reaches R (the prophecy has no positive solution): that end
is reported as unbounded, never as a number. Exact for the mean of exchangeable raters; for
the SD the customary approximation (mer_uq.data.reliability says the same).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from mer_uq.data.reliability import spearman_brown, split_half_reliability
from mer_uq.data.subsample import subsample_raters

TARGET_RELIABILITIES: tuple[float, ...] = (0.5, 0.8)


def single_rater_reliability(reliability: float, k: float) -> float:
    """rho_1 from the reliability of a k-rater statistic (Spearman-Brown, factor 1/k)."""
    if not math.isfinite(reliability):
        return math.nan
    return float(spearman_brown(reliability, 1.0 / k))


def raters_needed(rho_1: float, target: float) -> float:
    """Raters per song for reliability ``target``; inf where rho_1 <= 0 (unreachable)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target reliability must lie in (0, 1), got {target}")
    if not math.isfinite(rho_1):
        return math.nan
    if rho_1 <= 0.0:
        return math.inf
    if rho_1 >= 1.0:
        return 1.0
    return target * (1.0 - rho_1) / (rho_1 * (1.0 - target))


@dataclass(frozen=True)
class RatersNeeded:
    """Raters per song for one (dimension, statistic, target): point and interval
    (inf = unbounded), from the single-rater reliability measured at ``k`` raters."""

    dimension: str
    statistic: str
    target: float
    k: int
    reliability_k: float
    reliability_k_ci: tuple[float, float]
    single_rater: float
    single_rater_ci: tuple[float, float]
    raters: float
    raters_ci: tuple[float, float]
    n_songs: int

    def to_dict(self) -> dict[str, float | int | str]:
        out = asdict(self)
        for name in ("reliability_k_ci", "single_rater_ci", "raters_ci"):
            low, high = out.pop(name)
            stem = name.removesuffix("_ci")
            out[f"{stem}_ci_low"], out[f"{stem}_ci_high"] = low, high
        return out


def raters_needed_table(
    ratings: pd.DataFrame,
    targets: tuple[float, ...] = TARGET_RELIABILITIES,
    n_repeats: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[RatersNeeded]:
    """Raters needed for each target reliability, per dimension and statistic.

    Every song is cut to the smallest rater count k of the table (seeded draw, so that all
    split halves have the same size and the step-down factor is exactly 1/k); split-half
    reliability with its bootstrap over songs then gives rho_k and its interval."""
    k = int(ratings.groupby("song_id").size().min())
    equal = subsample_raters(ratings, k, seed)
    rel = split_half_reliability(equal, n_repeats=n_repeats, n_boot=n_boot, seed=seed)
    out = []
    for dim, stats in rel.items():
        for stat, est in stats.items():
            rho_1 = single_rater_reliability(est.reliability, k)
            lo_1 = single_rater_reliability(est.ci_low, k)
            hi_1 = single_rater_reliability(est.ci_high, k)
            for target in targets:
                out.append(RatersNeeded(
                    dimension=dim, statistic=stat, target=target, k=k,
                    reliability_k=est.reliability,
                    reliability_k_ci=(est.ci_low, est.ci_high),
                    single_rater=rho_1, single_rater_ci=(lo_1, hi_1),
                    raters=raters_needed(rho_1, target),
                    raters_ci=(raters_needed(hi_1, target), raters_needed(lo_1, target)),
                    n_songs=est.n_songs,
                ))
    return out
