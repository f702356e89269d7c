"""Names shared by every layer, so that a column written by a trial is the column the
analysis reads.

We always predict valence AND arousal; code loops over DIMENSIONS instead of assuming a
single output.
"""

from __future__ import annotations

DIMENSIONS: tuple[str, ...] = ("valence", "arousal")
SPLITS: tuple[str, ...] = ("train", "valid", "test")

# Per-song target columns of DeamDataset.songs (normalised scale h(r) = (r - 5) / 5).
TARGET_MEAN = {d: f"{d}_mean" for d in DIMENSIONS}
TARGET_SD = {d: f"{d}_sd" for d in DIMENSIONS}

# Prediction tables (one row per song x method x seed), written by every trial.
PRED_MU = {d: f"{d}_mu" for d in DIMENSIONS}
PRED_SIGMA = {d: f"{d}_sigma" for d in DIMENSIONS}
PREDICTION_KEY_COLUMNS: tuple[str, ...] = ("song_id", "split", "method", "seed")
PREDICTION_COLUMNS: tuple[str, ...] = (
    *PREDICTION_KEY_COLUMNS,
    *(c for d in DIMENSIONS for c in (PRED_MU[d], PRED_SIGMA[d])),
)
# Hyperparameters travel with the predictions as columns with this prefix (hp_dropout, ...).
HP_PREFIX = "hp_"

# Data axes (mer_uq.data.subsample): columns a trial of a data-axes sweep adds to its
# predictions. Raters per song (NaN: all), share of the training split kept, and the seed
# of both draws. Absent from the trials of a sweep without data axes.
AXIS_RATERS = "n_raters_k"
AXIS_TRAIN_FRACTION = "train_fraction"
AXIS_SUBSAMPLE_SEED = "subsample_seed"
DATA_AXIS_COLUMNS: tuple[str, ...] = (AXIS_RATERS, AXIS_TRAIN_FRACTION, AXIS_SUBSAMPLE_SEED)
