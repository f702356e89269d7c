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


def song_targets(ratings: pd.DataFrame) -> pd.DataFrame:
    """Mean and population SD of each dimension, and n_raters, per song (sorted by id)."""
    grouped = ratings.groupby("song_id", sort=True)
    out = pd.DataFrame(index=grouped.size().index)
    for dim in DIMENSIONS:
        out[TARGET_MEAN[dim]] = grouped[dim].mean()
        out[TARGET_SD[dim]] = grouped[dim].std(ddof=SD_DDOF)
    out["n_raters"] = grouped.size().astype(np.int64)
    return out.reset_index()


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
