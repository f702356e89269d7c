"""The data axes in the report: does the SD become learnable with more raters per song,
or more training songs, and how far is the reliability ceiling at that amount of data?

Only for a sweep run with ``--raters`` and/or ``--train-fraction`` (its trial files carry
the schema.DATA_AXIS_COLUMNS). Three things, each a table (written by analysis.write, shown
by analysis.present.data_axes_section):

* curves: Pearson r of predicted vs empirical SD (and mean) on the test songs, per method
  (mean over seeds), against k and against the training fraction, with a bootstrap band
  over test songs (one index matrix shared by every point, so points are paired). The
  empirical target is every rater of the test song (``all``), and also the same k-rater
  draw the trial trained with (``k``); on synthetic data also the latent truth (``true``);
* the reliability ceiling at each k: split-half + Spearman-Brown on the k-rater draw of
  the test songs (mer_uq.data.reliability), sqrt(reliability) with its interval. A half
  of one rater has SD 0, so the SD ceiling is undefined below k = 4 (shown as a gap);
* raters needed: per-song raters for the mean and the SD to reach reliability 0.5 and
  0.8 (mer_uq.data.prophecy), with the interval over songs; an unbounded end is said so.

The main Tables 2 and 3 of the report show one cell only, the one with the most data
(analysis.read.reference_predictions.reference_cell), so an ensemble or a table row never
mixes two k's.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.compute.bootstrap import percentile_interval, resample_indices
from analysis.compute.ceilings import reliability_of_songs
from analysis.compute.pipeline import ReportData
from analysis.compute.rows import EVAL_SPLIT
from analysis.read.reference_predictions import (
    cells,
    has_data_axes,
    in_cell,
    raters_order,
    reference_feature_set,
)
from mer_uq import metrics, schema
from mer_uq.data.dataset import DeamDataset
from mer_uq.data.prophecy import TARGET_RELIABILITIES, raters_needed_table
from mer_uq.data.subsample import DataAxes, apply_axes
from mer_uq.scores import MEAN, PEARSON, SD
from mer_uq.synthetic import TRUE_MEAN, TRUE_SD

STATISTICS: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]] = {
    # statistic -> (prediction column, empirical target column, latent-truth column)
    MEAN: (schema.PRED_MU, schema.TARGET_MEAN, TRUE_MEAN),
    SD: (schema.PRED_SIGMA, schema.TARGET_SD, TRUE_SD),
}
MIN_RATERS_FOR_SD_HALVES = 4  # each half needs 2 ratings for a non-degenerate SD


def _axes(k: float, fraction: float, seed: int) -> DataAxes:
    return DataAxes(None if not np.isfinite(k) else int(k), fraction, seed)


def _mean_r(target: np.ndarray, members: np.ndarray, indices: np.ndarray | None
            ) -> tuple[float, float, np.ndarray]:
    """Mean over seeds of Pearson r(target, member) (mer_uq.metrics), the SD over seeds,
    and the same mean on each bootstrap resample of the songs (vectorised; equal to
    metrics.pearson_r per resample, tested)."""
    per_seed = np.array([metrics.pearson_r(target, m) for m in members])
    if indices is None:
        return float(np.mean(per_seed)), float(np.std(per_seed)), np.empty(0)
    x = target[indices]
    x = x - x.mean(axis=1, keepdims=True)
    y = members[:, indices]
    y = y - y.mean(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(axis=2) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=2))
    return float(np.mean(per_seed)), float(np.std(per_seed)), r.mean(axis=0)


def _members(rows: pd.DataFrame, method: str, column: str, song_ids: np.ndarray
             ) -> np.ndarray:
    """[seeds, songs] of one method's prediction column; seeds lacking a song left out."""
    out = []
    for _, group in rows[rows["method"] == method].groupby("seed", sort=True):
        by_song = group.set_index("song_id")
        if np.isin(song_ids, by_song.index.to_numpy()).all():
            out.append(by_song.loc[song_ids, column].to_numpy(np.float64))
    return np.array(out) if out else np.empty((0, song_ids.size))


def curve_table(predictions: pd.DataFrame, dataset: DeamDataset, n_boot: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """One line per (cell, method, dimension, statistic, target): r, SD over seeds, 95 %
    bootstrap interval over test songs."""
    song_ids = dataset.song_ids(EVAL_SPLIT)
    indices = resample_indices(song_ids.size, n_boot, seed) if n_boot > 0 else None
    full = dataset.songs.set_index("song_id").loc[song_ids]
    test_rows = predictions[predictions["split"] == EVAL_SPLIT]
    lines = []
    for k, fraction, sub_seed in cells(predictions):
        rows = test_rows.loc[in_cell(test_rows, k, fraction)]
        targets = {"all": full}
        if np.isfinite(k):
            k_songs = apply_axes(dataset, _axes(k, 1.0, sub_seed)).k_scored.songs
            targets["k"] = k_songs.set_index("song_id").loc[song_ids]
        for method in sorted(rows["method"].unique()):
            for stat, (pred_col, target_col, true_col) in STATISTICS.items():
                for dim in schema.DIMENSIONS:
                    members = _members(rows, method, pred_col[dim], song_ids)
                    if members.size == 0 or not np.isfinite(members).all():
                        continue  # no seed covers the songs, or no spread predicted
                    named = {name: t[target_col[dim]] for name, t in targets.items()}
                    if true_col[dim] in full.columns:
                        named["true"] = full[true_col[dim]]
                    for target, values in named.items():
                        value, sd, boot = _mean_r(values.to_numpy(np.float64), members,
                                                  indices)
                        low, high = (percentile_interval(boot) if boot.size
                                     else (math.nan, math.nan))
                        lines.append({"raters": k, "train_fraction": fraction,
                                      "subsample_seed": sub_seed, "method": method,
                                      "dimension": dim, "statistic": stat, "target": target,
                                      PEARSON: value, "sd_over_seeds": sd, "ci_low": low,
                                      "ci_high": high, "n_seeds": len(members),
                                      "n_songs": song_ids.size})
    return pd.DataFrame(lines)


def ceiling_table(dataset: DeamDataset, raters: list[float], subsample_seed: int,
                  n_repeats: int = 200, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Reliability and correlation ceiling of the test songs' mean and SD at each k (the
    same k-rater draw the trials used; NaN k = every rater)."""
    song_ids = dataset.song_ids(EVAL_SPLIT)
    lines = []
    for k in raters:
        ratings = (dataset.ratings if not np.isfinite(k) else
                   apply_axes(dataset, _axes(k, 1.0, subsample_seed)).k_scored.ratings)
        with warnings.catch_warnings():  # halves of one rater: SD undefined, NaN on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            rel = reliability_of_songs(ratings, song_ids, n_repeats, n_boot, seed)
        for dim, stats in rel.items():
            for stat, est in stats.items():
                defined = stat != SD or not np.isfinite(k) or k >= MIN_RATERS_FOR_SD_HALVES
                nan = math.nan
                lines.append({"raters": k, "dimension": dim, "statistic": stat,
                              "reliability": est.reliability if defined else nan,
                              "ci_low": est.ci_low if defined else nan,
                              "ci_high": est.ci_high if defined else nan,
                              "ceiling": est.ceiling if defined else nan,
                              "ceiling_ci_low": est.ceiling_ci_low if defined else nan,
                              "ceiling_ci_high": est.ceiling_ci_high if defined else nan,
                              "n_songs": est.n_songs})
    return pd.DataFrame(lines)


def short_table(dataset: DeamDataset, raters: list[float]) -> pd.DataFrame:
    """Songs per split with fewer ratings than k (they keep all theirs)."""
    lines = []
    for k in (k for k in raters if np.isfinite(k)):
        for split in schema.SPLITS:
            part = dataset.songs.loc[dataset.songs["split"] == split, "n_raters"]
            lines.append({"raters": int(k), "split": split, "songs": len(part),
                          "songs_with_fewer_ratings": int((part < k).sum())})
    return pd.DataFrame(lines, columns=["raters", "split", "songs", "songs_with_fewer_ratings"])


def needed_table(dataset: DeamDataset, n_repeats: int = 200, n_boot: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """mer_uq.data.prophecy.raters_needed_table on every song of the dataset."""
    return pd.DataFrame([r.to_dict() for r in
                         raters_needed_table(dataset.ratings, TARGET_RELIABILITIES, n_repeats,
                                             n_boot, seed)])


# ---------------------------------------------------------------- the report's section

CURVES_STEM, CEILINGS_STEM = "data_axes_curves", "data_axes_ceilings"
SHORT_STEM, NEEDED_STEM = "data_axes_short", "raters_needed"


@dataclass(frozen=True)
class DataAxesResult:
    """The numbers of the report's data-axes section."""

    found: list[tuple[float, float, int]]  # the (k, fraction, subsample seed) cells trained
    curves: pd.DataFrame
    ceilings: pd.DataFrame
    short: pd.DataFrame
    needed: pd.DataFrame

    @property
    def subsample_seed(self) -> int:
        return self.found[0][2]

    @property
    def reference(self) -> tuple[float, float, int]:
        """The cell the main tables show (most raters, largest fraction)."""
        return max(self.found, key=lambda c: (raters_order(c[0]), c[1]))

    def frames(self) -> dict[str, pd.DataFrame]:
        """Its tables by file stem."""
        return {CURVES_STEM: self.curves, CEILINGS_STEM: self.ceilings,
                SHORT_STEM: self.short, NEEDED_STEM: self.needed}


def data_axes_result(data: ReportData) -> DataAxesResult | None:
    """The data-axes numbers of a report's sweep (its reference feature set); None for a
    sweep without data axes."""
    predictions = reference_feature_set(data.sweep.predictions, data.sweep.config or {})
    if not has_data_axes(predictions):
        return None
    settings, dataset = data.settings, data.dataset
    found = cells(predictions)
    raters = sorted({c[0] for c in found}, key=raters_order)
    sub_seed = found[0][2]
    if not any(not np.isfinite(k) for k in raters):
        raters = [*raters, math.nan]  # the full-panel ceiling, for reference
    curves = curve_table(predictions, dataset, settings.n_boot, settings.seed)
    ceilings = ceiling_table(dataset, raters, sub_seed, settings.reliability_repeats,
                             settings.reliability_boot, settings.seed)
    short = short_table(dataset, raters)
    needed = needed_table(dataset, settings.reliability_repeats, settings.reliability_boot,
                          settings.seed)
    return DataAxesResult(found, curves, ceilings, short, needed)
