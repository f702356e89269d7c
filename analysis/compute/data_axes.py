"""The data axes in the report: does the SD become learnable with more raters per song,
or more training songs, and how far is the reliability ceiling at that amount of data?

Only for a sweep run with ``--raters`` and/or ``--train-fraction`` (its trial files carry
the schema.DATA_AXIS_COLUMNS). Three things, each written as a table and shown in the
report:

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
(``reference_cell``), so an ensemble or a table row never mixes two k's.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.compute.bootstrap import percentile_interval, resample_indices
from analysis.compute.ceilings import reliability_of_songs
from analysis.compute.rows import method_label
from analysis.present.figures import save_figure
from analysis.present.render import Block, Bullets, Heading, Image, Paragraph, Table
from analysis.present.table_layout import fmt
from mer_uq import metrics, schema
from mer_uq.data.dataset import DeamDataset
from mer_uq.data.prophecy import TARGET_RELIABILITIES, raters_needed_table
from mer_uq.data.subsample import DataAxes, apply_axes
from mer_uq.scores import MEAN, PEARSON, SD
from mer_uq.synthetic import TRUE_MEAN, TRUE_SD

EVAL_SPLIT = "test"
STATISTICS: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]] = {
    # statistic -> (prediction column, empirical target column, latent-truth column)
    MEAN: (schema.PRED_MU, schema.TARGET_MEAN, TRUE_MEAN),
    SD: (schema.PRED_SIGMA, schema.TARGET_SD, TRUE_SD),
}
TARGET_LABELS = {"all": "vs all raters", "k": "vs the same k raters", "true": "vs latent truth"}
TARGET_STYLES = {"all": "-", "k": "--", "true": ":"}
MIN_RATERS_FOR_SD_HALVES = 4  # each half needs 2 ratings for a non-degenerate SD


def has_data_axes(predictions: pd.DataFrame) -> bool:
    return schema.AXIS_RATERS in predictions.columns


def _raters_order(k: float) -> float:
    """NaN (every rater) sorts after every k."""
    return math.inf if not np.isfinite(k) else float(k)


def cells(predictions: pd.DataFrame) -> list[tuple[float, float, int]]:
    """The (k, fraction, subsample seed) cells present, k ascending then 'all'."""
    frame = predictions[list(schema.DATA_AXIS_COLUMNS)].drop_duplicates()
    found = {(float(k), float(f), int(s)) for k, f, s in frame.itertuples(index=False)}
    return sorted(found, key=lambda c: (_raters_order(c[0]), c[1], c[2]))


def _in_cell(predictions: pd.DataFrame, k: float, fraction: float) -> pd.Series:
    raters = predictions[schema.AXIS_RATERS]
    same_k = raters.isna() if not np.isfinite(k) else raters == k
    return same_k & (predictions[schema.AXIS_TRAIN_FRACTION] == fraction)


def reference_cell(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows of the cell with the most data (most raters, largest fraction): what the
    report's main tables show. Predictions without data axes are returned unchanged."""
    if not has_data_axes(predictions):
        return predictions
    k, fraction, _ = max(cells(predictions), key=lambda c: (_raters_order(c[0]), c[1]))
    return predictions.loc[_in_cell(predictions, k, fraction)].reset_index(drop=True)


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
        rows = test_rows.loc[_in_cell(test_rows, k, fraction)]
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


# ---------------------------------------------------------------- words


def _count(value: float) -> str:
    return "unbounded" if value == math.inf else "n/a" if not np.isfinite(value) else (
        f"{value:.1f}")


def needed_sentences(needed: pd.DataFrame) -> list[str]:
    """One sentence per (dimension, statistic, target reliability)."""
    out = []
    for line in needed.itertuples(index=False):
        what = f"{line.dimension} {'SD' if line.statistic == 'sd' else 'mean'}"
        rho = (f"single-rater reliability {fmt(line.single_rater, 4)} "
               f"[{fmt(line.single_rater_ci_low, 4)}, {fmt(line.single_rater_ci_high, 4)}], "
               f"stepped down from {fmt(line.reliability_k)} at {line.k} raters")
        low, high = _count(line.raters_ci_low), _count(line.raters_ci_high)
        if line.raters == math.inf:
            head = (f"{what}: reliability {line.target:g} is out of reach by this estimate "
                    f"(the single-rater reliability is <= 0)")
        else:
            head = (f"{what}: reliability {line.target:g} needs about "
                    f"{_count(line.raters)} raters per song")
        tail = (f"; 95% interval over songs [{low}, {high}]"
                + (" (its upper end is unbounded because the interval of the single-rater "
                   "reliability reaches <= 0)" if high == "unbounded" else ""))
        out.append(f"{head}{tail}; {rho}.")
    return out


def needed_display(needed: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "dimension": needed["dimension"], "statistic": needed["statistic"],
        "target reliability": needed["target"].map(lambda v: f"{v:g}"),
        "raters needed": needed["raters"].map(_count),
        "95% interval": [f"[{_count(lo)}, {_count(hi)}]" for lo, hi in
                         zip(needed["raters_ci_low"], needed["raters_ci_high"], strict=True)],
        "single-rater reliability": [f"{fmt(v, 4)} [{fmt(lo, 4)}, {fmt(hi, 4)}]" for v, lo, hi in
                                     zip(needed["single_rater"], needed["single_rater_ci_low"],
                                         needed["single_rater_ci_high"], strict=True)],
        "measured at k": needed["k"],
    })


# ---------------------------------------------------------------- figures


def _k_label(k: float) -> str:
    return "all" if not np.isfinite(k) else f"{int(k)}"


def axis_figure(curves: pd.DataFrame, ceilings: pd.DataFrame, axis: str) -> Figure:
    """r against k (axis='raters', at the largest fraction) or against the training
    fraction (axis='train_fraction', at the most raters); rows: mean, SD; columns:
    valence, arousal; grey: the ceiling at that k."""
    fig, axes = plt.subplots(2, len(schema.DIMENSIONS), figsize=(10.0, 7.6), squeeze=False)
    if curves.empty:
        axes[0, 0].text(0.5, 0.5, "no curves", ha="center")
        return fig
    ks = sorted(curves["raters"].unique(), key=_raters_order)
    if axis == "raters":
        part = curves[curves["train_fraction"] == curves["train_fraction"].max()]
        labels = [_k_label(k) for k in ks]
        position = part["raters"].map(lambda k: labels.index(_k_label(k)))
        held = f"training fraction {part['train_fraction'].iloc[0]:g}"
    else:
        top = max(ks, key=_raters_order)
        keep = (curves["raters"] == top) if np.isfinite(top) else curves["raters"].isna()
        part = curves[keep]
        position = part["train_fraction"]
        held = f"k = {_k_label(top)} raters per song"
    part = part.assign(x=position.to_numpy(float))
    methods = sorted(part["method"].unique())
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    for i, stat in enumerate(STATISTICS):
        for j, dim in enumerate(schema.DIMENSIONS):
            ax = axes[i, j]
            _ceiling_band(ax, ceilings, dim, stat, axis, ks, part)
            for (method, target), line in part[(part["statistic"] == stat)
                                               & (part["dimension"] == dim)].groupby(
                                                   ["method", "target"], sort=True):
                line = line.sort_values("x")
                ax.plot(line["x"], line[PEARSON], marker="o", ms=3, color=colours[method],
                        ls=TARGET_STYLES[target],
                        label=f"{method_label(method)} {TARGET_LABELS[target]}")
                if target == "all":
                    ax.fill_between(line["x"], line["ci_low"], line["ci_high"],
                                    color=colours[method], alpha=0.15, lw=0)
            ax.axhline(0.0, color="black", lw=0.6)
            ax.set_title(f"{dim} {'SD' if stat == 'sd' else 'mean'} ({held})", fontsize=9)
            ax.set_ylabel("Pearson r, test songs", fontsize=8)
            if axis == "raters":
                ax.set_xticks(range(len(ks)), [_k_label(k) for k in ks])
                ax.set_xlabel("raters per song for training targets (k)", fontsize=8)
            else:
                ax.set_xlabel("share of the training split", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=5.5, loc="best")
    fig.tight_layout()
    return fig


def _ceiling_band(ax: Any, ceilings: pd.DataFrame, dim: str, stat: str, axis: str,
                  ks: list[float], part: pd.DataFrame) -> None:
    rows = ceilings[(ceilings["dimension"] == dim) & (ceilings["statistic"] == stat)]
    if rows.empty:
        return
    if axis == "raters":
        order = {_k_label(k): i for i, k in enumerate(ks)}
        rows = rows.assign(x=[order.get(_k_label(k), np.nan) for k in rows["raters"]])
        full = rows[rows["raters"].isna()]
        if len(full) and "all" not in order:  # bound for the solid lines (all-rater target)
            ax.axhline(full["ceiling"].iloc[0], color="grey", lw=1, ls=":",
                       label="ceiling, all raters (for 'vs all raters')")
        rows = rows.dropna(subset=["x"]).sort_values("x")
        ax.plot(rows["x"], rows["ceiling"], color="grey", lw=2, alpha=0.7, marker="s", ms=4,
                label="ceiling at k (for 'vs the same k raters')")
        ax.fill_between(rows["x"], rows["ceiling_ci_low"], rows["ceiling_ci_high"],
                        color="grey", alpha=0.2, lw=0)
    else:
        top = max(ks, key=_raters_order)
        row = rows[[_k_label(k) == _k_label(top) for k in rows["raters"]]]
        if len(row):
            lo, hi = float(part["x"].min()), float(part["x"].max())
            ax.plot([lo, hi], [row["ceiling"].iloc[0]] * 2, color="grey", lw=2, alpha=0.7,
                    label=f"ceiling at k = {_k_label(top)}")
            ax.fill_between([lo, hi], [row["ceiling_ci_low"].iloc[0]] * 2,
                            [row["ceiling_ci_high"].iloc[0]] * 2, color="grey", alpha=0.2,
                            lw=0)


# ---------------------------------------------------------------- the report section


def write_section(data: Any, report_dir: Path) -> list[Block]:
    """Compute, write (tables/data_axes_*.csv, figures/data_axes_*.png) and return the
    report blocks of the data axes; [] for a sweep without them. ``data`` is the
    report's ReportData (its sweep, dataset and settings are used)."""
    from analysis.compute.feature_axis import reference_feature_set
    from analysis.write.report_files import FIGURES_DIRNAME, TABLES_DIRNAME, write_frame

    # one feature set (the reference) when the sweep also has a feature axis
    predictions = reference_feature_set(data.sweep.predictions, data.sweep.config or {})
    if not has_data_axes(predictions):
        return []
    settings, dataset = data.settings, data.dataset
    found = cells(predictions)
    raters = sorted({c[0] for c in found}, key=_raters_order)
    sub_seed = found[0][2]
    if not any(not np.isfinite(k) for k in raters):
        raters = [*raters, math.nan]  # the full-panel ceiling, for reference
    curves = curve_table(predictions, dataset, settings.n_boot, settings.seed)
    ceilings = ceiling_table(dataset, raters, sub_seed, settings.reliability_repeats,
                             settings.reliability_boot, settings.seed)
    short = short_table(dataset, raters)
    needed = needed_table(dataset, settings.reliability_repeats, settings.reliability_boot,
                          settings.seed)
    tables_dir, figures_dir = report_dir / TABLES_DIRNAME, report_dir / FIGURES_DIRNAME
    for stem, frame in (("data_axes_curves", curves), ("data_axes_ceilings", ceilings),
                        ("data_axes_short", short), ("raters_needed", needed)):
        write_frame(frame, tables_dir / stem)
    figures = {name: save_figure(axis_figure(curves, ceilings, axis),
                                 figures_dir / f"{name}.png")
               for name, axis in (("data_axes_raters", "raters"),
                                  ("data_axes_fraction", "train_fraction"))}
    reference = max(found, key=lambda c: (_raters_order(c[0]), c[1]))
    cell_text = ", ".join(f"k = {_k_label(k)} / fraction {f:g}" for k, f, _ in found)
    blocks: list[Block] = [
        Heading("Data axes: raters per song and training songs"),
        Paragraph(f"Cells trained (subsample seed {sub_seed}): {cell_text}. Tables 2 and 3 "
                  f"above show the cell with the most data (k = {_k_label(reference[0])}, "
                  f"fraction {reference[1]:g}); every cell is in tables/data_axes_curves.csv. "
                  "Training and validation targets come from k raters per song; test songs "
                  "are scored against all their raters (solid, with the 95% bootstrap band "
                  "over test songs) and against the same k raters (dashed)."),
        Image(figures["data_axes_raters"].relative_to(report_dir).as_posix(),
              "Pearson r of predicted vs empirical mean (top) and SD (bottom) against the "
              "raters per song k, per method (mean over seeds), at the largest training "
              "fraction; grey: the reliability ceiling at k (split-half + Spearman-Brown on "
              "the same k raters of the test songs; undefined for the SD below k = 4)."),
        Image(figures["data_axes_fraction"].relative_to(report_dir).as_posix(),
              "The same against the share of the training split kept (genre-stratified), "
              "at the most raters per song."),
        Table(_ceiling_display(ceilings), "Reliability ceiling of the test songs at each k"),
    ]
    if len(short) and short["songs_with_fewer_ratings"].sum() > 0:
        blocks.append(Table(short, "Songs with fewer ratings than k keep all of theirs"))
    elif len(short):
        blocks.append(Paragraph("Every song has at least k ratings at every k of the sweep."))
    blocks += [
        Heading("Raters per song needed", 3),
        Table(needed_display(needed),
              "Spearman-Brown prophecy from the single-rater reliability (every song cut to "
              "the smallest rater count k, split-half, stepped down to one rater); interval: "
              "bootstrap over songs. 'unbounded': the single-rater reliability may be <= 0, "
              "where no number of raters reaches the target."),
        Bullets(tuple(needed_sentences(needed))),
    ]
    return blocks


def _ceiling_display(ceilings: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "k": ceilings["raters"].map(_k_label), "dimension": ceilings["dimension"],
        "statistic": ceilings["statistic"],
        "reliability": [f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]" for v, lo, hi in
                        zip(ceilings["reliability"], ceilings["ci_low"], ceilings["ci_high"],
                            strict=True)],
        "ceiling": [f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]" for v, lo, hi in
                    zip(ceilings["ceiling"], ceilings["ceiling_ci_low"],
                        ceilings["ceiling_ci_high"], strict=True)],
    })
