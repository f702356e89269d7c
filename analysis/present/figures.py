"""The report's figures (matplotlib, Agg backend: no display needed; analysis.write saves
them as PNG).

* Fig. 2 / 3 analogues: where the songs' mean and SD ratings lie, per split, valence
  against arousal with marginal histograms. They show the bounded-scale shape (SD shrinks
  toward the ends of the scale) and whether the splits are alike.
* Fig. 4 / 5 analogues: predicted against empirical mean and SD, per method, one seed and
  the ensemble side by side, with the identity line: a flat cloud in Fig. 5 is what a
  near-zero Table 3 correlation looks like.
* Calibration curves: observed against nominal coverage of the held-out ratings.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.compute.rows import (
    DEEP_ENSEMBLE_PREFIX,
    SEEDS_ENSEMBLE_KEY,
    SEEDS_SINGLE_KEY,
    PredictionRow,
    method_label,
)
from analysis.compute.table_cells import predicted
from mer_uq import schema
from mer_uq.scores import MEAN, SD

SPLIT_COLOURS = {"train": "tab:blue", "valid": "tab:orange", "test": "tab:green"}
DPI = 110
# Line style by row group, so more than ten curves stay distinguishable.
GROUP_LINESTYLES = {"paper": "-", "extra": "--", "ensemble": "-.", "conformal": (0, (3, 1, 1, 1)),
                    "baseline": ":"}


def distribution_figure(songs: pd.DataFrame, statistic: str) -> Figure:
    """Valence vs arousal of each song's mean (statistic='mean') or SD ('sd'), per split,
    with marginal histograms (the paper's Fig. 2 and Fig. 3)."""
    columns = schema.TARGET_MEAN if statistic == MEAN else schema.TARGET_SD
    x_col, y_col = (columns[d] for d in schema.DIMENSIONS)
    fig = plt.figure(figsize=(6.4, 6.4))
    grid = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4),
                            wspace=0.05, hspace=0.05)
    ax = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    right = fig.add_subplot(grid[1, 1], sharey=ax)
    lo = min(songs[x_col].min(), songs[y_col].min())
    hi = max(songs[x_col].max(), songs[y_col].max())
    bins = np.linspace(lo, hi, 31)
    for split in schema.SPLITS:
        part = songs[songs["split"] == split]
        colour = SPLIT_COLOURS.get(split)
        ax.scatter(part[x_col], part[y_col], s=6, alpha=0.5, color=colour,
                   label=f"{split} ({len(part)})")
        top.hist(part[x_col], bins=bins, density=True, histtype="step", color=colour)
        right.hist(part[y_col], bins=bins, density=True, histtype="step", color=colour,
                   orientation="horizontal")
    name = "mean" if statistic == MEAN else "inter-rater SD"
    ax.set_xlabel(f"valence {name} (normalised)")
    ax.set_ylabel(f"arousal {name} (normalised)")
    ax.legend(loc="best", fontsize=8, markerscale=2)
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    top.set_title(f"Distribution of per-song {name} by split")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.09, top=0.94)
    return fig


def panel_pairs(rows: list[PredictionRow], target: str
                ) -> list[tuple[str, PredictionRow | None, PredictionRow | None]]:
    """(method label, one-seed row, ensemble row) per method for Fig. 4/5: the random-seeds
    single models against their ensemble; each two-output method's seed against its deep
    ensemble; MC dropout has no ensemble of its own."""
    by_key = {r.key: r for r in rows}
    pairs = []
    for row in rows:
        if row.group in ("baseline", "conformal") or row.key.startswith(DEEP_ENSEMBLE_PREFIX):
            continue
        if row.key == SEEDS_SINGLE_KEY:
            continue
        if row.key == SEEDS_ENSEMBLE_KEY:
            single, ensemble = by_key.get(SEEDS_SINGLE_KEY), row
        else:
            single, ensemble = row, by_key.get(f"{DEEP_ENSEMBLE_PREFIX}{row.key}")
        if target == SD:
            single = single if single is not None and single.has_sigma else None
            ensemble = ensemble if ensemble is not None and ensemble.has_sigma else None
        if single is not None or ensemble is not None:
            pairs.append((method_label(row.method), single, ensemble))
    return pairs


# The paper's Figures 4 and 5 show one model realisation of each single-model method: seed 41.
PAPER_FIGURE_SEED = 41


def figure_seed(rows: list[PredictionRow]) -> int | None:
    """The seed the single-model panels show: the paper's seed 41 when every per-seed row
    has it, else the lowest seed they share (None when no per-seed row exists)."""
    seed_sets = [set(r.seeds) for r in rows if not r.single and r.seeds]
    if not seed_sets:
        return None
    common = set.intersection(*seed_sets) or seed_sets[0]
    return PAPER_FIGURE_SEED if PAPER_FIGURE_SEED in common else min(common)


def prediction_figure(rows: list[PredictionRow], targets: dict[tuple[str, str], np.ndarray],
                      target: str) -> Figure:
    """Predicted vs empirical mean (Fig. 4) or SD (Fig. 5), one row of panels per method."""
    pairs = panel_pairs(rows, target)
    shown_seed = figure_seed(rows)
    n = max(len(pairs), 1)
    height = 2.6 * n
    fig, axes = plt.subplots(n, len(schema.DIMENSIONS), figsize=(7.0, height), squeeze=False)
    # Fixed margins (in inches, so any number of rows fits) instead of tight_layout, which
    # draws the whole figure once more to measure it: a third of the report's figure time.
    bottom, top, gap = 0.5, 0.3, 0.75  # inches: x label, title, x label + next title
    panel = (height - bottom - top - gap * (n - 1)) / n
    fig.subplots_adjust(left=0.09, right=0.98, bottom=bottom / height, top=1 - top / height,
                        wspace=0.28, hspace=gap / panel)
    name = "mean" if target == MEAN else "SD"
    for i, (label, single, ensemble) in enumerate(pairs):
        for j, dim in enumerate(schema.DIMENSIONS):
            ax = axes[i, j]
            y_true = targets[(target, dim)]
            if single is not None:
                member = (single.seeds.index(shown_seed) if shown_seed in single.seeds
                          else 0)
                ax.scatter(y_true, predicted(single, target, dim)[member], s=5, alpha=0.45,
                           color="tab:gray", label=f"seed {single.seeds[member]}")
            if ensemble is not None:
                ax.scatter(y_true, predicted(ensemble, target, dim)[0], s=5, alpha=0.6,
                           color="tab:red", label=f"ensemble ({len(ensemble.seeds)})")
            lo, hi = float(np.min(y_true)), float(np.max(y_true))
            ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
            ax.set_title(f"{label}: {dim}", fontsize=9)
            ax.set_xlabel(f"empirical {name}", fontsize=8)
            ax.set_ylabel(f"predicted {name}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.locator_params(nbins=5)
            ax.legend(fontsize=6, loc="best", markerscale=2)
    if not pairs:
        axes[0, 0].text(0.5, 0.5, f"no row predicts the {name}", ha="center")
    return fig


def calibration_figure(calibration: pd.DataFrame) -> Figure:
    """Observed vs nominal central-interval coverage of the test ratings, per dimension."""
    fig, axes = plt.subplots(1, len(schema.DIMENSIONS), figsize=(10.0, 4.6), squeeze=False)
    for j, dim in enumerate(schema.DIMENSIONS):
        ax = axes[0, j]
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--", label="calibrated")
        part = calibration[calibration["dimension"] == dim] if len(calibration) else calibration
        groups = part.groupby("row_key", sort=False) if len(part) else []
        for i, (_key, curve) in enumerate(groups):
            ax.plot(curve["expected"], curve["observed"], marker="o", ms=3, lw=1,
                    color=plt.get_cmap("tab20")(i % 20),
                    ls=GROUP_LINESTYLES.get(curve["group"].iloc[0], "-"),
                    label=curve["row_label"].iloc[0])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("nominal coverage of the central interval")
        ax.set_ylabel("observed share of test ratings inside")
        ax.set_title(f"Calibration on individual ratings: {dim}")
        ax.legend(fontsize=6, loc="upper left")
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.11, top=0.93, wspace=0.2)
    return fig


def report_figures(songs: pd.DataFrame, rows: list[PredictionRow],
                   targets: dict[tuple[str, str], np.ndarray], calibration: pd.DataFrame
                   ) -> dict[str, Figure]:
    """Every figure of the report's main part, by file name, in the report's order."""
    return {
        "fig2_mean_distribution": distribution_figure(songs, MEAN),
        "fig3_sd_distribution": distribution_figure(songs, SD),
        "fig4_mean_predicted_vs_empirical": prediction_figure(rows, targets, MEAN),
        "fig5_sd_predicted_vs_empirical": prediction_figure(rows, targets, SD),
        "calibration_curves": calibration_figure(calibration),
    }
