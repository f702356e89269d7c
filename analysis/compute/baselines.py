"""Baselines the paper lacks, as predictions in the trial schema.

A Table 3 correlation of 0.05 means nothing until it sits next to what a trivial
predictor reaches. Each baseline is written as rows of the same prediction schema the
trials use (one pseudo-seed, 0), so every table, score and figure treats it exactly like
a method. All three share one predicted mean, the ridge probe from features to the mean
(the "mean-only ridge probe", Table 2's baseline row); they differ in the predicted SD:

* ``baseline_constant_sd``: the training songs' mean SD for every song. Its correlation
  is undefined (NaN) by construction; its R^2 shows what "no per-song information" costs,
  and its proper scores are the reference every uncertainty method should beat.
* ``baseline_sd_from_mean``: a quadratic in the mean, fitted on the training songs'
  empirical (mean, SD) pairs and evaluated at the ridge-predicted mean. On a bounded 1..9
  scale songs near the ends cannot spread much: this captures that bounded-scale effect
  and nothing else.
* ``baseline_ridge``: the ridge probe from features straight to the SD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.compute.ridge import fit_ridge
from mer_uq import schema
from mer_uq.blas_threads import one_blas_thread

BASELINE_RIDGE = "baseline_ridge"
BASELINE_CONSTANT_SD = "baseline_constant_sd"
BASELINE_SD_FROM_MEAN = "baseline_sd_from_mean"
BASELINE_METHODS: tuple[str, ...] = (BASELINE_CONSTANT_SD, BASELINE_SD_FROM_MEAN, BASELINE_RIDGE)
BASELINE_SEED = 0
# Keep a predicted SD strictly positive so proper scores stay defined (1e-3 of a 2-wide scale).
SIGMA_FLOOR = 1e-3
QUADRATIC_DEGREE = 2


@dataclass
class BaselineResult:
    """Baseline predictions (valid and test songs, trial schema) and how each was fitted."""

    predictions: pd.DataFrame
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # per dimension


def compute_baselines(songs: pd.DataFrame, features: np.ndarray) -> BaselineResult:
    """Fit every baseline on the training songs (penalties on the validation songs).

    ``songs`` is DeamDataset.songs (or a subset of its rows); ``features`` holds the
    standardised feature row of each of those songs, in the same order.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.shape[0] != len(songs):
        raise ValueError(f"{features.shape[0]} feature rows for {len(songs)} songs")
    split = songs["split"].to_numpy()
    is_train, is_valid = split == "train", split == "valid"
    is_eval = np.isin(split, ("valid", "test"))
    out = songs.loc[is_eval, ["song_id", "split"]].reset_index(drop=True)
    frames = {m: out.copy() for m in BASELINE_METHODS}
    details: dict[str, dict[str, Any]] = {}
    with one_blas_thread():  # the probes' SVD and least squares: the same bits anywhere
        for dim in schema.DIMENSIONS:
            mean = songs[schema.TARGET_MEAN[dim]].to_numpy(dtype=np.float64)
            sd = songs[schema.TARGET_SD[dim]].to_numpy(dtype=np.float64)
            mean_probe = fit_ridge(features[is_train], mean[is_train],
                                   features[is_valid], mean[is_valid])
            sd_probe = fit_ridge(features[is_train], sd[is_train], features[is_valid], sd[is_valid])
            quadratic = np.polyfit(mean[is_train], sd[is_train], QUADRATIC_DEGREE)
            constant_sd = float(sd[is_train].mean())
            mu_eval = mean_probe.predict(features[is_eval])
            sigmas = {
                BASELINE_CONSTANT_SD: np.full(mu_eval.shape, constant_sd),
                BASELINE_SD_FROM_MEAN: np.polyval(quadratic, mu_eval),
                BASELINE_RIDGE: sd_probe.predict(features[is_eval]),
            }
            for method, sigma in sigmas.items():
                frames[method][schema.PRED_MU[dim]] = mu_eval
                frames[method][schema.PRED_SIGMA[dim]] = np.maximum(sigma, SIGMA_FLOOR)
            details[dim] = {
                "mean_probe_alpha": mean_probe.alpha,
                "mean_probe_valid_r2": mean_probe.valid_r2,
                "sd_probe_alpha": sd_probe.alpha,
                "sd_probe_valid_r2": sd_probe.valid_r2,
                "constant_sd": constant_sd,
                "sd_from_mean_coefficients_high_to_low": [float(c) for c in quadratic],
            }
    predictions = pd.concat(
        [frame.assign(method=method, seed=BASELINE_SEED) for method, frame in frames.items()],
        ignore_index=True,
    )
    return BaselineResult(predictions[list(schema.PREDICTION_COLUMNS)], details)
