"""Table 2 (predicted vs empirical mean) and Table 3 (predicted vs empirical SD).

Every cell is a metric from mer_uq.metrics between one row's prediction and the
empirical per-song statistic of the test songs: mean +/- SD over the row's seeds, or a
single value for a combined predictor. Each cell also gets a bootstrap interval over test
songs; the bootstrap draws are kept (``TableResult.boot``) so that any two rows can be
compared on the same resampled songs (analysis.comparisons).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.baselines import BASELINE_CONSTANT_SD, BASELINE_SD_FROM_MEAN
from analysis.bootstrap import percentile_interval
from analysis.rows import PredictionRow, table_group, table_label, table_order
from mer_uq import schema
from mer_uq.metrics import pearson_r, r2_score, spearman_rho

TARGET_MEAN, TARGET_SD = "mean", "sd"
TABLE_TARGETS: dict[str, str] = {"table2": TARGET_MEAN, "table3": TARGET_SD}
TABLE_TITLES: dict[str, str] = {
    "table2": "Table 2: predicted vs empirical MEAN rating (test split)",
    "table3": "Table 3: predicted vs empirical inter-rater SD (test split)",
}
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "r2": r2_score, "pearson": pearson_r, "spearman": spearman_rho,
}
METRIC_LABELS: dict[str, str] = {"r2": "R²", "pearson": "r", "spearman": "ρ"}
# Baselines that differ from the ridge probe only in their SD add nothing to Table 2.
_SD_ONLY_BASELINES = (BASELINE_CONSTANT_SD, BASELINE_SD_FROM_MEAN)


def empirical_targets(songs: pd.DataFrame, song_ids: np.ndarray) -> dict[tuple[str, str],
                                                                         np.ndarray]:
    """(target, dimension) -> the empirical per-song mean or SD, in ``song_ids`` order."""
    by_song = songs.set_index("song_id").loc[np.asarray(song_ids, dtype=np.int64)]
    out = {}
    for d in schema.DIMENSIONS:
        out[(TARGET_MEAN, d)] = by_song[schema.TARGET_MEAN[d]].to_numpy(dtype=np.float64)
        out[(TARGET_SD, d)] = by_song[schema.TARGET_SD[d]].to_numpy(dtype=np.float64)
    return out


def rows_for_target(rows: list[PredictionRow], target: str) -> list[PredictionRow]:
    """The rows a table prints: Table 3 needs a predicted SD, Table 2 skips baselines whose
    mean is the ridge probe's again."""
    if target == TARGET_SD:
        return [r for r in rows if r.has_sigma]
    return [r for r in rows if r.key not in _SD_ONLY_BASELINES]


def predicted(row: PredictionRow, target: str, dim: str) -> np.ndarray:
    """[n_members, n_songs]: the row's predicted mean, or its predicted SD."""
    return row.mu[dim] if target == TARGET_MEAN else row.sigma[dim]


def member_scores(row: PredictionRow, target: str, dim: str, y_true: np.ndarray,
                  metric: str) -> np.ndarray:
    """The metric of each member (seed) of a row: the values behind mean +/- SD."""
    fn = METRICS[metric]
    return np.array([fn(y_true, pred) for pred in predicted(row, target, dim)])


def _batched_correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """mer_uq.metrics' Pearson r along the last axis of broadcastable arrays (NaN where
    either side is exactly constant), the same formula term for term."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    denom = np.sqrt(np.sum(xc * xc, axis=-1) * np.sum(yc * yc, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(np.sum(xc * yc, axis=-1) / denom, -1.0, 1.0)
    constant = np.all(x == x[..., :1], axis=-1) | np.all(y == y[..., :1], axis=-1)
    return np.where(constant | (denom == 0.0), np.nan, r)


def _batched_r2(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """mer_uq.metrics' R² along the last axis (NaN where the target is constant)."""
    ss_tot = np.sum((y_true - y_true.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    ss_res = np.sum((y_true - y_pred) ** 2, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    return np.where(ss_tot == 0.0, np.nan, r2)


def resampled_ranks(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Average ranks (scipy's rankdata, method 'average') of every resample of ``values``:
    [n_boot, n_items], without sorting each resample.

    A resample only repeats the original values, so the rank of a value in resample b is
    (how many drawn values are smaller) + (how often it was drawn + 1) / 2: a count per
    distinct value and a cumulative sum. Ranks are half-integers, so the result is exact.
    """
    distinct, code = np.unique(values, return_inverse=True)
    n_boot = indices.shape[0]
    drawn = code[indices]                                   # [n_boot, n_items]
    offsets = np.arange(n_boot)[:, None] * distinct.size
    counts = np.bincount((drawn + offsets).ravel(),
                         minlength=n_boot * distinct.size).reshape(n_boot, distinct.size)
    average = np.cumsum(counts, axis=1) - counts + (counts + 1) / 2.0
    return np.take_along_axis(average, drawn, axis=1)


def bootstrap_cell(row: PredictionRow, target: str, dim: str, y_true: np.ndarray,
                   metric: str, indices: np.ndarray) -> np.ndarray:
    """The cell's statistic (mean over members) on every resample: [n_boot].

    All members and resamples at once, as [n_members, n_boot, n_songs] arrays: one call
    per resample and member was 99 % of the report's time. Spearman's rho is Pearson's r
    of the average ranks (mer_uq's definition, checked in the tests); the ranks of every
    resample come from counts (``resampled_ranks``), not a sort per resample.
    The values equal mer_uq.metrics per resample up to float rounding.
    """
    if metric == "spearman":
        members = predicted(row, target, dim)
        ranks = np.stack([resampled_ranks(pred, indices) for pred in members])
        draws = _batched_correlation(resampled_ranks(y_true, indices)[None], ranks)
    elif metric in ("pearson", "r2"):
        truth = y_true[indices][None]                        # [1, n_boot, n_songs]
        resampled = predicted(row, target, dim)[:, indices]  # [n_members, n_boot, n_songs]
        batched = _batched_correlation if metric == "pearson" else _batched_r2
        draws = batched(truth, resampled)
    else:
        raise ValueError(f"no batched form of metric {metric!r}")
    return draws.mean(axis=0)


@dataclass
class TableResult:
    """Long-format cells of both tables, per-seed values, and the bootstrap draws."""

    cells: pd.DataFrame
    per_seed: pd.DataFrame
    boot: dict[tuple[str, str, str, str], np.ndarray] = field(default_factory=dict)


def compute_tables(rows: list[PredictionRow], targets: dict[tuple[str, str], np.ndarray],
                   indices: np.ndarray | None) -> TableResult:
    """Every cell of Tables 2 and 3. ``indices`` is the bootstrap index matrix shared by all
    rows (None: no intervals)."""
    cells, per_seed = [], []
    boot: dict[tuple[str, str, str, str], np.ndarray] = {}
    for table, target in TABLE_TARGETS.items():
        for row in table_order(rows_for_target(rows, target), table):
            for dim in schema.DIMENSIONS:
                y_true = targets[(target, dim)]
                for metric in METRICS:
                    values = member_scores(row, target, dim, y_true, metric)
                    finite = values[np.isfinite(values)]
                    mean = float(finite.mean()) if finite.size else float("nan")
                    sd = float(finite.std(ddof=1)) if finite.size >= 2 else float("nan")
                    low = high = float("nan")
                    if indices is not None:
                        draws = bootstrap_cell(row, target, dim, y_true, metric, indices)
                        boot[(table, row.key, dim, metric)] = draws
                        low, high = percentile_interval(draws)
                    cells.append({
                        "table": table, "target": target, "row_key": row.key,
                        "row_label": table_label(row, table),
                        "group": table_group(row, table), "single": row.single,
                        "n_seeds": len(row.seeds), "dimension": dim, "metric": metric,
                        "value": mean, "sd_over_seeds": sd if not row.single else float("nan"),
                        "ci_low": low, "ci_high": high,
                    })
                    per_seed += [
                        {"table": table, "row_key": row.key, "dimension": dim,
                         "metric": metric, "seed": seed, "value": float(v)}
                        for seed, v in zip(row.seeds if not row.single else (-1,), values,
                                           strict=True)
                    ]
    return TableResult(pd.DataFrame(cells), pd.DataFrame(per_seed), boot)
