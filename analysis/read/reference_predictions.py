"""Which of a sweep's predictions the report's main tables show.

A sweep with data axes (``--raters`` / ``--train-fraction``) predicts once per cell (k,
fraction), and a sweep with a feature axis once per feature set; Tables 2 and 3 show one
of each, so an ensemble or a table row never mixes two: the cell with the most data and
the first feature set given. Every other reader (coverage, the pipeline, the sections)
selects through these functions, so they agree on what "the reference" is.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.read.sweep_results import FEATURE_SET_COLUMN
from mer_uq import schema


def has_data_axes(predictions: pd.DataFrame) -> bool:
    return schema.AXIS_RATERS in predictions.columns


def raters_order(k: float) -> float:
    """NaN (every rater) sorts after every k."""
    return math.inf if not np.isfinite(k) else float(k)


def cells(predictions: pd.DataFrame) -> list[tuple[float, float, int]]:
    """The (k, fraction, subsample seed) cells present, k ascending then 'all'."""
    frame = predictions[list(schema.DATA_AXIS_COLUMNS)].drop_duplicates()
    found = {(float(k), float(f), int(s)) for k, f, s in frame.itertuples(index=False)}
    return sorted(found, key=lambda c: (raters_order(c[0]), c[1], c[2]))


def in_cell(predictions: pd.DataFrame, k: float, fraction: float) -> pd.Series:
    raters = predictions[schema.AXIS_RATERS]
    same_k = raters.isna() if not np.isfinite(k) else raters == k
    return same_k & (predictions[schema.AXIS_TRAIN_FRACTION] == fraction)


def reference_cell(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows of the cell with the most data (most raters, largest fraction): what the
    report's main tables show. Predictions without data axes are returned unchanged."""
    if not has_data_axes(predictions):
        return predictions
    k, fraction, _ = max(cells(predictions), key=lambda c: (raters_order(c[0]), c[1]))
    return predictions.loc[in_cell(predictions, k, fraction)].reset_index(drop=True)


def sweep_feature_sets(predictions: pd.DataFrame, config: dict[str, Any]) -> list[str]:
    """The feature-set labels of a sweep, in the order sweep.json gives them ([] without
    the axis)."""
    if FEATURE_SET_COLUMN not in predictions.columns:
        return []
    present = set(predictions[FEATURE_SET_COLUMN].dropna())
    ordered = [f["label"] for f in config.get("feature_sets") or [] if f["label"] in present]
    return ordered + sorted(present - set(ordered))


def reference_feature_set(predictions: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """The predictions of the feature set the report's main tables show: the first one
    given (sweep.json's features / feature_column). Unchanged without the axis."""
    labels = sweep_feature_sets(predictions, config)
    if not labels:
        return predictions
    keep = predictions[FEATURE_SET_COLUMN] == labels[0]
    return predictions.loc[keep].reset_index(drop=True)
