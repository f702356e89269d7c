"""Reliability ceilings next to every metric.

The empirical per-song mean and SD are themselves estimates from ~10 raters. Any
predictor, however good, is scored against that noisy target, so its correlation cannot
be expected to exceed sqrt(reliability) of the target (classical test theory). The
reliabilities come from mer_uq's split-half estimator on the per-rater table of the SAME
test songs the tables score; this module only reshapes them into table cells:

* Pearson and Spearman: the correlation ceiling sqrt(reliability) (for Spearman this is
  the Pearson bound used as an approximation, stated in the report);
* R^2: the reliability itself, the share of the target's variance that is true-score
  variance, i.e. the R^2 of a predictor that knew each song's true score exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mer_uq import schema
from mer_uq.data.reliability import ReliabilityEstimate, split_half_reliability
from mer_uq.scores import POINT_SCORES, R2

DEFAULT_REPEATS = 200
DEFAULT_BOOT = 1000


def reliability_of_songs(ratings: pd.DataFrame, song_ids: np.ndarray,
                          n_repeats: int = DEFAULT_REPEATS, n_boot: int = DEFAULT_BOOT,
                          seed: int = 0) -> dict[str, dict[str, ReliabilityEstimate]]:
    """mer_uq's split-half reliability on the per-rater table of the given songs only."""
    chosen = ratings[ratings["song_id"].isin(np.asarray(song_ids, dtype=np.int64))]
    return split_half_reliability(chosen, n_repeats=n_repeats, n_boot=n_boot, seed=seed)


def reliability_frame(rel: dict[str, dict[str, ReliabilityEstimate]]) -> pd.DataFrame:
    """One line per (dimension, statistic) with every field of the estimate."""
    return pd.DataFrame([est.to_dict() for stats in rel.values() for est in stats.values()])


def ceiling_cells(rel: dict[str, dict[str, ReliabilityEstimate]]) -> pd.DataFrame:
    """The ceiling of each (target, dimension, metric) cell, with its interval."""
    lines = []
    for dim in schema.DIMENSIONS:
        for target, est in rel[dim].items():
            for metric in POINT_SCORES:
                if metric == R2:
                    value, low, high = est.reliability, est.ci_low, est.ci_high
                else:
                    value, low, high = est.ceiling, est.ceiling_ci_low, est.ceiling_ci_high
                lines.append({"target": target, "dimension": dim, "metric": metric,
                              "ceiling": value, "ceiling_ci_low": low,
                              "ceiling_ci_high": high, "n_songs": est.n_songs})
    return pd.DataFrame(lines)
