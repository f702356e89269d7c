"""Per-song targets from the per-rater table, and their check against DEAM's averaged file.

Targets are recomputed from the individual ratings (not copied from the averaged file) so
that the SD, the mean and the reliability ceilings all come from one table. The SD is the
population SD (ddof=0): DEAM's averaged file was computed that way, which
``check_against_averaged`` verifies on every load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mer_uq.schema import DIMENSIONS, TARGET_MEAN, TARGET_SD

SD_DDOF = 0
_LISTED = 20  # mismatched song ids listed in to_dict()
NEUTRAL, SCALE = 5.0, 5.0  # h(r) = (r - 5) / 5 maps 1..9 into [-0.8, 0.8]


def normalise(raw: np.ndarray | pd.Series | float) -> np.ndarray | pd.Series | float:
    """h(r) = (r - 5) / 5, the paper's normalisation of the 9-point scale."""
    return (raw - NEUTRAL) / SCALE


# Decimals kept when ratings are not on the integer scale (e.g. synthetic data): enough for
# any real difference, few enough that float noise cannot break a tie.
TIE_DECIMALS = 12
_INTEGER_TOLERANCE = 1e-9


def _exact_statistics(raw: np.ndarray, codes: np.ndarray, n: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised mean and population SD per song from integer ratings, with integer sums.

    Two songs whose true (rational) statistic is equal get the bit-identical float: each
    value is one correctly rounded division (and square root) of exact integers, so ties
    stay ties and Spearman's rho ranks them as the tie they are. Summing floats instead
    leaves ~1e-16 noise that breaks ties arbitrarily.
    """
    total = np.bincount(codes, weights=raw, minlength=n.size).round().astype(np.int64)
    squares = np.bincount(codes, weights=raw * raw, minlength=n.size).round().astype(np.int64)
    # normalised: (r - 5) / 5 is affine, so mean_h = (S/n - 5) / 5 and sd_h = sd_raw / 5,
    # with sd_raw^2 = (n S2 - S^2) / n^2 exactly (population SD, ddof 0).
    mean = (total / n - NEUTRAL) / SCALE
    sd = np.sqrt((n * squares - total * total) / (n * n)) / SCALE
    return mean, sd


def song_targets(ratings: pd.DataFrame) -> pd.DataFrame:
    """Mean and population SD of each dimension, and n_raters, per song (sorted by id).

    Ratings on DEAM's integer 1..9 scale (as normalised by ``normalise``) are aggregated
    exactly from the integers; other ratings are aggregated in floats and rounded to
    TIE_DECIMALS so that equal statistics compare equal.
    """
    song_ids, codes = np.unique(ratings["song_id"].to_numpy(dtype=np.int64),
                                return_inverse=True)
    n = np.bincount(codes, minlength=song_ids.size).astype(np.int64)
    out = pd.DataFrame({"song_id": song_ids})
    for dim in DIMENSIONS:
        raw = ratings[dim].to_numpy(dtype=np.float64) * SCALE + NEUTRAL
        integral = np.round(raw)
        if np.all(np.abs(raw - integral) <= _INTEGER_TOLERANCE):
            mean, sd = _exact_statistics(integral, codes, n)
        else:
            grouped = ratings.groupby("song_id", sort=True)[dim]
            mean = grouped.mean().to_numpy().round(TIE_DECIMALS)
            sd = grouped.std(ddof=SD_DDOF).to_numpy().round(TIE_DECIMALS)
        out[TARGET_MEAN[dim]] = mean
        out[TARGET_SD[dim]] = sd
    out["n_raters"] = n
    return out


@dataclass(frozen=True)
class DdofCheck:
    """How well per-rater SDs computed with one ddof reproduce the averaged file's SDs
    after rounding to its 2 decimals."""

    ddof: int
    n_songs: int
    n_equal: int
    max_abs_diff: float
    mismatched_songs: tuple[int, ...]


@dataclass(frozen=True)
class AveragedFileCheck:
    """Agreement between our per-rater recomputation and DEAM's own averaged file.

    Raw 1..9 scale. ``mean_max_abs_diff`` allows for the averaged file's 1-decimal means.
    """

    sd: dict[int, DdofCheck] = field(default_factory=dict)
    mean_max_abs_diff: dict[str, float] = field(default_factory=dict)
    mean_mismatched_songs: tuple[int, ...] = ()

    @property
    def best_ddof(self) -> int:
        """The ddof that reproduces the averaged file best; ours when there is no such file
        (a generic or synthetic dataset)."""
        if not self.sd:
            return SD_DDOF
        return max(self.sd.values(), key=lambda c: c.n_equal).ddof

    def to_dict(self) -> dict[str, object]:
        return {
            "ddof_used": SD_DDOF,
            "best_ddof": self.best_ddof,
            "sd": {
                str(c.ddof): {
                    "n_songs": c.n_songs,
                    "n_equal_after_rounding": c.n_equal,
                    "max_abs_diff": c.max_abs_diff,
                    "n_mismatched": len(c.mismatched_songs),
                    "mismatched_songs": list(c.mismatched_songs[:_LISTED]),
                }
                for c in self.sd.values()
            },
            "mean_max_abs_diff": self.mean_max_abs_diff,
            "mean_mismatched_songs": list(self.mean_mismatched_songs),
        }


def check_against_averaged(raw_ratings: pd.DataFrame, averaged: pd.DataFrame) -> AveragedFileCheck:
    """Compare per-song SDs (ddof 0 and 1, rounded to 2 decimals) and means (1 decimal)
    recomputed from raw ratings with the averaged file (both on the same, raw scale and
    with the same swap state)."""
    grouped = raw_ratings.groupby("song_id", sort=True)
    ref = averaged.set_index("song_id").reindex(grouped.size().index)
    ids = ref.index.to_numpy()
    checks: dict[int, DdofCheck] = {}
    for ddof in (0, 1):
        diffs = np.column_stack(
            [
                np.abs(grouped[d].std(ddof=ddof).round(2).to_numpy() - ref[f"{d}_std"].to_numpy())
                for d in DIMENSIONS
            ]
        )
        worst = np.nanmax(diffs, axis=1)
        mismatched = worst > 0.005 + 1e-9
        checks[ddof] = DdofCheck(
            ddof=ddof,
            n_songs=len(ids),
            n_equal=int((~mismatched).sum()),
            max_abs_diff=round(float(np.nanmax(worst)), 6),
            mismatched_songs=tuple(int(s) for s in ids[mismatched]),
        )
    mean_diffs = {
        d: np.abs(grouped[d].mean().to_numpy() - ref[f"{d}_mean"].to_numpy()) for d in DIMENSIONS
    }
    mean_bad = np.zeros(len(ids), dtype=bool)
    for diff in mean_diffs.values():
        mean_bad |= diff > 0.05 + 1e-9
    return AveragedFileCheck(
        sd=checks,
        mean_max_abs_diff={d: round(float(np.nanmax(v)), 6) for d, v in mean_diffs.items()},
        mean_mismatched_songs=tuple(int(s) for s in ids[mean_bad]),
    )
