"""Proper scores of each row's predicted distribution against the held-out raters.

A correlation with the empirical SD (Table 3) ignores scale and uses only one number per
song. The question a user of an uncertainty estimate actually asks is "how likely are the
ratings real listeners gave, under the predicted N(mu, sigma^2)?". So every individual
(normalised) rating of a test song is scored under that song's predicted Gaussian:
Gaussian NLL, CRPS, coverage of the central 50/80/95 % intervals, and the calibration
curve; a method of another family (Student-t, mixture, NIG, quantiles; mer_uq.families)
is scored with that family's own log-density, CRPS and CDF. The scores are
mer_uq.scores' (the same function and names a trial records); this module only applies
them to every member of every row.

For the random-seeds and MC-dropout rows sigma is the spread of the MODEL, not of the
raters: their rating scores show what happens when model uncertainty is read as rater
disagreement, which is exactly how the paper uses them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from analysis.compute.rows import CONFORMAL, PredictionRow
from mer_uq import schema
from mer_uq.families import Predictive
from mer_uq.metrics import calibration_curve
from mer_uq.scores import (
    RATING_SCORES,
    distribution_calibration_curve,
    distribution_rating_scores,
    has_spread,
    rating_positions,
    rating_scores,
)


def _usable_members(row: PredictionRow, dim: str, index: np.ndarray
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, Predictive | None]]:
    """Each member's (mu, sigma, family distribution or None) per rating, skipping members
    with no usable spread (a single-seed mean-only model has sigma NaN): they have no
    distribution to score."""
    dists = (row.distributions[dim] if row.distributions is not None
             else [None] * row.n_members)
    for mu, sigma, dist in zip(row.mu[dim], row.sigma[dim], dists, strict=True):
        if has_spread(sigma):
            yield mu[index], sigma[index], None if dist is None else dist.take(index)


def _member_scores(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                   dist: Predictive | None) -> dict[str, float]:
    return rating_scores(y, mu, sigma) if dist is None else distribution_rating_scores(y, dist)


def _member_curve(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                  dist: Predictive | None) -> tuple[np.ndarray, np.ndarray]:
    return (calibration_curve(y, mu, sigma) if dist is None
            else distribution_calibration_curve(y, dist))


def _rows_by_dimension(rows: list[PredictionRow], ratings: pd.DataFrame, song_ids: np.ndarray
                       ) -> Iterator[tuple[PredictionRow, str, np.ndarray,
                                           list[tuple[np.ndarray, np.ndarray,
                                                      Predictive | None]]]]:
    """(row, dimension, the ratings of that dimension, the row's usable members there) for
    every row with a predicted spread: what both tables below score."""
    index, values = rating_positions(ratings, song_ids)
    for row in rows:
        if row.has_sigma:
            for dim in schema.DIMENSIONS:
                yield row, dim, values[dim], list(_usable_members(row, dim, index))


def rating_score_table(rows: list[PredictionRow], ratings: pd.DataFrame, song_ids: np.ndarray
                       ) -> pd.DataFrame:
    """Long table: row, dimension, score, value (mean over members), SD over members."""
    lines = []
    for row, dim, y, members in _rows_by_dimension(rows, ratings, song_ids):
        per_member = [_member_scores(y, *member) for member in members]
        for name in RATING_SCORES:
            member_values = np.array([s[name] for s in per_member])
            lines.append({
                "row_key": row.key, "row_label": row.label, "group": row.group,
                "single": row.single, "n_seeds": len(row.seeds), "dimension": dim,
                "score": name,
                "value": float(member_values.mean()) if member_values.size else np.nan,
                "sd_over_seeds": (float(member_values.std(ddof=1))
                                  if member_values.size >= 2 else np.nan),
                "n_ratings": int(y.size),
                "members_without_spread": row.n_members - len(members),
            })
    return pd.DataFrame(lines)


def calibration_table(rows: list[PredictionRow], ratings: pd.DataFrame, song_ids: np.ndarray
                      ) -> pd.DataFrame:
    """Calibration curve of each row (observed coverage averaged over its members)."""
    lines = []
    for row, dim, y, members in _rows_by_dimension(rows, ratings, song_ids):
        curves = [_member_curve(y, *member) for member in members]
        if not curves:
            continue
        expected = curves[0][0]
        observed = np.mean([c[1] for c in curves], axis=0)
        lines += [{"row_key": row.key, "row_label": row.label, "group": row.group,
                   "dimension": dim,
                   "expected": float(e), "observed": float(o)}
                  for e, o in zip(expected, observed, strict=True)]
    return pd.DataFrame(lines)


# Rows whose whole predicted SD is model (epistemic) uncertainty: the spread of the seeds'
# means, of the MC-dropout passes and of SWAG's weight samples. Shown beside the rows
# that split their SD in two.
MODEL_ONLY_ROWS: tuple[str, ...] = ("seeds", "mc_dropout", "swag")


def variance_parts(rows: list[PredictionRow]) -> pd.DataFrame:
    """For rows that split their SD (ensembles; the last-layer Laplace: noise and the output
    layer's posterior), and the model-only rows beside them (seeds ensemble, MC dropout,
    SWAG: epistemic only): mean over test songs and members of the aleatoric and epistemic
    variance (and the total), and the epistemic share; on the normalised scale."""
    lines = []
    for row in rows:
        parts = row.aleatoric_var is not None and row.epistemic_var is not None
        if row.group == CONFORMAL or not (parts or (row.key in MODEL_ONLY_ROWS
                                                    and row.has_sigma)):
            continue
        for dim in schema.DIMENSIONS:
            if parts:
                alea = float(np.mean(row.aleatoric_var[dim]))
                epis = float(np.mean(row.epistemic_var[dim]))
            else:
                alea, epis = 0.0, float(np.mean(row.sigma[dim] ** 2))
            lines.append({"row_key": row.key, "row_label": row.label, "dimension": dim,
                          "aleatoric_var": alea, "epistemic_var": epis,
                          "total_var": alea + epis,
                          "epistemic_share": epis / (alea + epis) if alea + epis > 0 else np.nan,
                          "rms_aleatoric_sd": float(np.sqrt(alea)),
                          "rms_epistemic_sd": float(np.sqrt(epis))})
    return pd.DataFrame(lines)
