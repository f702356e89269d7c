"""Every score of a prediction against its split's targets, computed and named here once.

A trial's metrics (mer_uq.trial), the report's Table 2 / Table 3 cells and rating scores
(analysis.compute.table_cells, analysis.compute.rating_scores) and so the tables the sweep
prints at its end all come from these functions, so the numbers a trial records and the
numbers the report prints are the same computation, under the same names:

* what is scored (``TARGETS``): the per-song ``mean`` (Table 2) or ``sd`` (Table 3) against
  the empirical statistic, each with the point scores ``r2``, ``pearson``, ``spearman``;
  and every individual ``rating`` under the predicted N(mu, sigma^2), with the proper
  scores ``nll``, ``crps`` and the coverage of the central 50/80/95 % intervals;
* a flat name is ``<target>_<score>`` (``mean_r2``, ``sd_spearman``, ``rating_coverage_95``)
  and a trial metric ``<split>/<method>/<dimension>/<target>_<score>``.

A prediction without a usable spread (a single mean-only model: sigma NaN) gets the mean
scores only. The scoring formulas themselves are mer_uq.metrics'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mer_uq import families, metrics
from mer_uq.families import Predictive
from mer_uq.schema import DIMENSIONS, PRED_MU, PRED_SIGMA, TARGET_MEAN, TARGET_SD

MEAN, SD, RATING = "mean", "sd", "rating"
TARGETS: tuple[str, ...] = (MEAN, SD)  # the per-song statistics a point score compares
R2, PEARSON, SPEARMAN = "r2", "pearson", "spearman"
POINT_SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    R2: metrics.r2_score, PEARSON: metrics.pearson_r, SPEARMAN: metrics.spearman_rho,
}  # fmt: skip
NLL, CRPS = "nll", "crps"
COVERAGE_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.95)


def coverage_name(level: float) -> str:
    return f"coverage_{round(100 * level)}"


RATING_SCORES: tuple[str, ...] = (NLL, CRPS, *(coverage_name(lv) for lv in COVERAGE_LEVELS))


def score_name(target: str, score: str) -> str:
    """The flat name of one score of one target: ``<target>_<score>``."""
    return f"{target}_{score}"


def point_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R², Pearson r and Spearman rho of one predicted per-song statistic."""
    return {name: fn(y_true, y_pred) for name, fn in POINT_SCORES.items()}


def rating_scores(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    """The proper scores of N(mu, sigma^2) for each rating y (mu, sigma given per rating)."""
    scores = {NLL: metrics.gaussian_nll(y, mu, sigma), CRPS: metrics.crps_gaussian(y, mu, sigma)}
    for level in COVERAGE_LEVELS:
        scores[coverage_name(level)] = metrics.interval_coverage(y, mu, sigma, level)
    return scores


def distribution_rating_scores(y: np.ndarray, dist: Predictive) -> dict[str, float]:
    """`rating_scores` of any family's distribution (given per rating): the family's own
    log-density, CRPS and central intervals (mer_uq.families)."""
    scores = {NLL: float(-np.mean(dist.logpdf(y))), CRPS: float(np.mean(dist.crps(y)))}
    for level in COVERAGE_LEVELS:
        scores[coverage_name(level)] = float(np.mean(dist.covered(y, level)))
    return scores


def distribution_calibration_curve(
    y: np.ndarray, dist: Predictive,
    levels: tuple[float, ...] = metrics.DEFAULT_CALIBRATION_LEVELS,
) -> tuple[np.ndarray, np.ndarray]:
    """`metrics.calibration_curve` of any family's distribution (given per rating)."""
    pit = np.abs(2.0 * dist.cdf(y) - 1.0)
    expected = np.asarray(levels, dtype=np.float64)
    return expected, np.array([np.mean(pit <= level) for level in expected])


def row_distribution(rows: pd.DataFrame, dim: str) -> Predictive | None:
    """The family distribution of prediction rows of one dimension, from their `family`
    and `<dim>__<param>` columns; None for Gaussian rows (scored from mu and sigma)."""
    if families.FAMILY_COLUMN not in rows.columns:
        return None
    names = rows[families.FAMILY_COLUMN].dropna().unique()
    if len(names) == 0:
        return None
    if len(names) > 1 or rows[families.FAMILY_COLUMN].isna().any():
        raise ValueError(f"prediction rows mix distribution families {sorted(map(str, names))}")
    return families.from_columns(str(names[0]), rows, dim)


def has_spread(sigma: np.ndarray) -> bool:
    """Whether a predicted SD is a distribution to score (finite and > 0 everywhere)."""
    return bool(np.all(np.isfinite(sigma)) and np.all(sigma > 0))


def rating_positions(ratings: pd.DataFrame, song_ids: np.ndarray
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every rating of the songs ``song_ids``: the position of its song in ``song_ids``
    and the ratings per dimension (so ``mu[position]`` is each rating's predicted mean)."""
    song_ids = np.asarray(song_ids, dtype=np.int64)
    chosen = ratings[ratings["song_id"].isin(song_ids)]
    position = pd.Series(np.arange(song_ids.size), index=song_ids)
    return (position.loc[chosen["song_id"].to_numpy()].to_numpy(),
            {d: chosen[d].to_numpy(dtype=np.float64) for d in DIMENSIONS})


@dataclass(frozen=True)
class SplitTargets:
    """The targets of a set of songs, in ``song_ids`` order: per-song mean and SD, and
    every individual rating with the position of its song (``rating_song``)."""

    song_ids: np.ndarray
    mean: dict[str, np.ndarray]
    sd: dict[str, np.ndarray]
    rating_song: np.ndarray
    ratings: dict[str, np.ndarray]

    @classmethod
    def of(cls, songs: pd.DataFrame, ratings: pd.DataFrame, song_ids: np.ndarray
           ) -> SplitTargets:
        song_ids = np.asarray(song_ids, dtype=np.int64)
        by_song = songs.set_index("song_id").loc[song_ids]
        rating_song, values = rating_positions(ratings, song_ids)
        return cls(
            song_ids=song_ids,
            mean={d: by_song[TARGET_MEAN[d]].to_numpy(dtype=np.float64) for d in DIMENSIONS},
            sd={d: by_song[TARGET_SD[d]].to_numpy(dtype=np.float64) for d in DIMENSIONS},
            rating_song=rating_song,
            ratings=values,
        )

    def statistic(self, target: str, dim: str) -> np.ndarray:
        """The empirical per-song ``mean`` or ``sd`` of one dimension."""
        return self.mean[dim] if target == MEAN else self.sd[dim]


def prediction_scores(targets: SplitTargets, dim: str, mu: np.ndarray, sigma: np.ndarray,
                      dist: Predictive | None = None) -> dict[str, float]:
    """Every score of one prediction (mu, sigma per song, in ``targets.song_ids`` order) of
    one dimension, by flat name; the SD and rating scores only where sigma is a spread.
    A family's distribution (`dist`, per song) scores the ratings with its own formulas."""
    found = {score_name(MEAN, k): v for k, v in point_scores(targets.mean[dim], mu).items()}
    if has_spread(sigma):
        found |= {score_name(SD, k): v for k, v in point_scores(targets.sd[dim], sigma).items()}
        at = targets.rating_song
        y = targets.ratings[dim]
        scores = (rating_scores(y, mu[at], sigma[at]) if dist is None
                  else distribution_rating_scores(y, dist.take(at)))
        found |= {score_name(RATING, k): v for k, v in scores.items()}
    return found


def score_split(predictions: pd.DataFrame, songs: pd.DataFrame, ratings: pd.DataFrame,
                split: str = "test") -> dict[str, float]:
    """Scores per method and dimension on one split of a prediction table, mean over the
    seeds present: ``{'<split>/<method>/<dimension>/<target>_<score>': value}``."""
    rows = predictions[predictions["split"] == split]
    scores: dict[str, list[float]] = {}
    for (method, _seed), group in rows.groupby(["method", "seed"], sort=True):
        targets = SplitTargets.of(songs, ratings, group["song_id"].to_numpy())
        for dim in DIMENSIONS:
            found = prediction_scores(targets, dim, group[PRED_MU[dim]].to_numpy(),
                                      group[PRED_SIGMA[dim]].to_numpy(),
                                      row_distribution(group, dim))
            for name, value in found.items():
                scores.setdefault(f"{split}/{method}/{dim}/{name}", []).append(value)
    return {key: float(np.mean(values)) for key, values in scores.items()}
