"""Conformally calibrated copies of the table rows ("KLD + conformal", ...).

Every Gaussian row with a predicted SD, except the baselines, gets a twin whose sigma is scaled by
the split-conformal factor (mer_uq.conformal) fitted on the VALIDATION songs' individual
ratings: member by member (a per-seed row keeps one factor per seed) and dimension by
dimension, at the 80 % level. The twin keeps the row's mu, so Table 2 prints the same
means, Table 3's Pearson and Spearman are the row's own (a positive factor changes no
ranking) and its R², the proper scores and the calibration curve are what calibration
changes. The test songs never enter the factor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.compute.rows import BASELINE, CONFORMAL, PredictionRow
from mer_uq import schema
from mer_uq.conformal import DEFAULT_LEVEL, scale_factor
from mer_uq.prediction import ENSEMBLE_SEED
from mer_uq.scores import rating_positions

CONFORMAL_SUFFIX = "_conformal"


def conformal_key(key: str) -> str:
    return f"{key}{CONFORMAL_SUFFIX}"


def original_key(key: str) -> str | None:
    """The row a calibrated row was made from (None for a row that is not one)."""
    return key.removesuffix(CONFORMAL_SUFFIX) if key.endswith(CONFORMAL_SUFFIX) else None


def calibrated_rows(test_rows: list[PredictionRow], valid_rows: list[PredictionRow],
                    ratings: pd.DataFrame, valid_song_ids: np.ndarray,
                    level: float = DEFAULT_LEVEL) -> tuple[list[PredictionRow], pd.DataFrame]:
    """The calibrated twin of every test row that has a spread and a validation row with
    the same members, and the factors table (row_key, dimension, member seed (-1: a
    single-valued row), factor, n_calibration_ratings). A row without a usable
    validation twin is skipped with a note on that row."""
    by_key = {r.key: r for r in valid_rows}
    index, values = rating_positions(ratings, valid_song_ids)
    twins: list[PredictionRow] = []
    lines = []
    for row in test_rows:
        if row.group == BASELINE or not row.has_sigma:
            continue
        if row.distributions is not None:
            # The factor is fitted on Gaussian intervals mu +- z sigma; a Student-t, mixture
            # or quantile row's own intervals are not those, and its proper scores use its
            # family's formulas: a Gaussian twin would misstate both. (The quantile method
            # is already conformalised, by CQR, inside its trial.)
            row.notes.append("no conformal calibration: split conformal here scales a "
                             "Gaussian SD, and this row's predictive family is not Gaussian")
            continue
        if index.size == 0:
            row.notes.append("no conformal calibration: the validation songs have no "
                             "individual ratings")
            continue
        valid = by_key.get(row.key)
        if valid is None or valid.seeds != row.seeds or not valid.has_sigma:
            row.notes.append("no conformal calibration: its validation predictions lack "
                             "these members or a spread")
            continue
        factors = {d: np.array([scale_factor(values[d], mu[index], sigma[index], level)
                                for mu, sigma in zip(valid.mu[d], valid.sigma[d], strict=True)])
                   for d in schema.DIMENSIONS}
        if not all(np.isfinite(f).all() for f in factors.values()):
            row.notes.append("no conformal calibration: too few validation ratings")
            continue
        scale = {d: factors[d][:, None] for d in schema.DIMENSIONS}
        members = (ENSEMBLE_SEED,) if row.single else row.seeds
        twins.append(PredictionRow(
            conformal_key(row.key), f"{row.label} + conformal", CONFORMAL, row.method,
            single=row.single, seeds=row.seeds, mu=row.mu,
            sigma={d: row.sigma[d] * scale[d] for d in schema.DIMENSIONS},
            aleatoric_var=_scaled(row.aleatoric_var, scale),
            epistemic_var=_scaled(row.epistemic_var, scale)))
        lines += [{"row_key": conformal_key(row.key), "row_label": f"{row.label} + conformal",
                   "dimension": d, "seed": seed, "level": level, "factor": float(f),
                   "n_calibration_ratings": int(index.size)}
                  for d in schema.DIMENSIONS for seed, f in zip(members, factors[d], strict=True)]
    return twins, pd.DataFrame(lines, columns=["row_key", "row_label", "dimension", "seed",
                                               "level", "factor", "n_calibration_ratings"])


def _scaled(parts: dict[str, np.ndarray] | None, scale: dict[str, np.ndarray]
            ) -> dict[str, np.ndarray] | None:
    """A variance part scaled with sigma (both parts by c², so their shares stay)."""
    return None if parts is None else {d: parts[d] * scale[d] ** 2 for d in parts}
