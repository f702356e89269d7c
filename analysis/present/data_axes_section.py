"""The data-axes section as a reader sees it: sentences, display tables, two figures.

The numbers come from analysis.compute.data_axes (``DataAxesResult``); nothing here
computes a statistic. Figures: Pearson r against the raters per song k (at the largest
training fraction) and against the training fraction (at the most raters), with the
reliability ceiling at k as a grey band.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.compute.data_axes import CURVES_STEM, STATISTICS, DataAxesResult
from analysis.compute.rows import method_label
from analysis.present.render import Block, Bullets, Heading, Image, Paragraph, Table
from analysis.present.report_paths import table_path
from analysis.present.table_layout import fmt, fmt_estimate
from analysis.read.reference_predictions import raters_order
from mer_uq import schema
from mer_uq.scores import PEARSON

TARGET_LABELS = {"all": "vs all raters", "k": "vs the same k raters", "true": "vs latent truth"}
TARGET_STYLES = {"all": "-", "k": "--", "true": ":"}


# ---------------------------------------------------------------- words


def _count(value: float) -> str:
    return "unbounded" if value == math.inf else "n/a" if not np.isfinite(value) else (
        f"{value:.1f}")


def needed_sentences(needed: pd.DataFrame) -> list[str]:
    """One sentence per (dimension, statistic, target reliability)."""
    out = []
    for line in needed.itertuples(index=False):
        what = f"{line.dimension} {'SD' if line.statistic == 'sd' else 'mean'}"
        single = fmt_estimate(line.single_rater, line.single_rater_ci_low,
                              line.single_rater_ci_high, 4)
        rho = (f"single-rater reliability {single}, "
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
        "single-rater reliability": [fmt_estimate(v, lo, hi, 4) for v, lo, hi in
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
    ks = sorted(curves["raters"].unique(), key=raters_order)
    if axis == "raters":
        part = curves[curves["train_fraction"] == curves["train_fraction"].max()]
        labels = [_k_label(k) for k in ks]
        position = part["raters"].map(lambda k: labels.index(_k_label(k)))
        held = f"training fraction {part['train_fraction'].iloc[0]:g}"
    else:
        top = max(ks, key=raters_order)
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
        top = max(ks, key=raters_order)
        row = rows[[_k_label(k) == _k_label(top) for k in rows["raters"]]]
        if len(row):
            lo, hi = float(part["x"].min()), float(part["x"].max())
            ax.plot([lo, hi], [row["ceiling"].iloc[0]] * 2, color="grey", lw=2, alpha=0.7,
                    label=f"ceiling at k = {_k_label(top)}")
            ax.fill_between([lo, hi], [row["ceiling_ci_low"].iloc[0]] * 2,
                            [row["ceiling_ci_high"].iloc[0]] * 2, color="grey", alpha=0.2,
                            lw=0)


# ---------------------------------------------------------------- the section


RATERS_FIGURE, FRACTION_FIGURE = "data_axes_raters", "data_axes_fraction"


def data_axes_figures(result: DataAxesResult) -> dict[str, Figure]:
    """The section's two figures by file name: r against k, and against the fraction."""
    return {RATERS_FIGURE: axis_figure(result.curves, result.ceilings, "raters"),
            FRACTION_FIGURE: axis_figure(result.curves, result.ceilings, "train_fraction")}


def data_axes_blocks(result: DataAxesResult, figures: dict[str, str]) -> list[Block]:
    """The section's blocks; ``figures``: figure name -> its path relative to the report."""
    ceilings, short, needed = result.ceilings, result.short, result.needed
    reference = result.reference
    cell_text = ", ".join(f"k = {_k_label(k)} / fraction {f:g}" for k, f, _ in result.found)
    blocks: list[Block] = [
        Heading("Data axes: raters per song and training songs"),
        Paragraph(f"Cells trained (subsample seed {result.subsample_seed}): {cell_text}. "
                  f"Tables 2 and 3 above show the cell with the most data (k = "
                  f"{_k_label(reference[0])}, fraction {reference[1]:g}); every cell is in "
                  f"{table_path(CURVES_STEM)}. "
                  "Training and validation targets come from k raters per song; test songs "
                  "are scored against all their raters (solid, with the 95% bootstrap band "
                  "over test songs) and against the same k raters (dashed)."),
        Image(figures[RATERS_FIGURE],
              "Pearson r of predicted vs empirical mean (top) and SD (bottom) against the "
              "raters per song k, per method (mean over seeds), at the largest training "
              "fraction; grey: the reliability ceiling at k (split-half + Spearman-Brown on "
              "the same k raters of the test songs; undefined for the SD below k = 4)."),
        Image(figures[FRACTION_FIGURE],
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
        "reliability": [fmt_estimate(v, lo, hi) for v, lo, hi in
                        zip(ceilings["reliability"], ceilings["ci_low"], ceilings["ci_high"],
                            strict=True)],
        "ceiling": [fmt_estimate(v, lo, hi) for v, lo, hi in
                    zip(ceilings["ceiling"], ceilings["ceiling_ci_low"],
                        ceilings["ceiling_ci_high"], strict=True)],
    })
