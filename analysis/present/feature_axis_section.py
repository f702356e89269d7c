"""The feature-set comparison as a reader sees it: display tables, one figure, blocks.

The numbers come from analysis.compute.feature_axis (``FeatureAxisResult``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.compute.feature_axis import CORRELATIONS_STEM, FeatureAxisResult
from analysis.present.render import Block, Heading, Image, Paragraph, Table
from analysis.present.report_paths import table_path
from analysis.present.table_layout import fmt, fmt_bounds, fmt_cell, fmt_estimate
from analysis.read.reference_predictions import sweep_feature_sets
from mer_uq import schema
from mer_uq.scores import MEAN, SD

FIGURE_NAME = "feature_axis"


def axis_figure(table: pd.DataFrame) -> Figure:
    """r of the mean (top) and SD (bottom) per feature set, one line per row, 95 % bands
    as error bars, the ceiling as a grey band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(table["feature_set"]))
    every_row = list(dict.fromkeys(table["row"]))  # one colour per row in every panel
    colours = {row: f"C{i % 10}" for i, row in enumerate(every_row)}
    x = np.arange(len(sets))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True, squeeze=False)
    for i, target in enumerate((MEAN, SD)):
        for j, dim in enumerate(schema.DIMENSIONS):
            ax = axes[i][j]
            cell = table[(table["target"] == target) & (table["dimension"] == dim)]
            rows = list(dict.fromkeys(cell["row"]))
            for k, row in enumerate(rows):
                line = cell[cell["row"] == row].set_index("feature_set").reindex(sets)
                offset = (k - (len(rows) - 1) / 2) * 0.06
                err = np.vstack([line["value"] - line["ci_low"], line["ci_high"] - line["value"]])
                ax.errorbar(x + offset, line["value"], yerr=np.where(np.isfinite(err), err, 0),
                            marker="o", capsize=2, label=row, color=colours[row])
            if len(cell) and np.isfinite(cell["ceiling"].iloc[0]):
                c = cell.iloc[0]
                ax.axhspan(c["ceiling_ci_low"], c["ceiling_ci_high"], color="0.85")
                ax.axhline(c["ceiling"], color="0.5", ls="--", lw=1, label="ceiling")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{dim}: predicted vs empirical {target.upper()}")
            ax.set_ylabel("Pearson r")
            ax.set_xticks(x, sets, rotation=20, ha="right")
    handles = {h.get_label(): h for ax in fig.axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return fig


def _display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "feature set": table["feature_set"], "row": table["row_label"],
        "target": table["target"], "dimension": table["dimension"],
        "r": [fmt_cell(v, sd, s) for v, sd, s in
              zip(table["value"], table["sd_over_seeds"], table["single"], strict=True)],
        "95 % band": [fmt_bounds(lo, hi) for lo, hi in
                      zip(table["ci_low"], table["ci_high"], strict=True)],
        "ceiling": [fmt_estimate(c, lo, hi) for c, lo, hi in
                    zip(table["ceiling"], table["ceiling_ci_low"], table["ceiling_ci_high"],
                        strict=True)],
    })


def _comparison_display(comp: pd.DataFrame) -> pd.DataFrame:
    if comp.empty:
        return comp
    return pd.DataFrame({
        "A": comp["A"], "B": comp["B"], "row": comp["row"], "target": comp["target"],
        "dimension": comp["dimension"], "r(A) - r(B)": comp["difference"].map(fmt),
        "95 % paired bootstrap": [fmt_bounds(lo, hi) for lo, hi in
                                  zip(comp["ci_low"], comp["ci_high"], strict=True)],
        "p (bootstrap)": comp["p_bootstrap"].map(lambda p: fmt(p, 3)),
        "p (seed Wilcoxon)": comp["p_wilcoxon"].map(lambda p: fmt(p, 3)),
    })


def feature_axis_blocks(result: FeatureAxisResult, figure: str) -> list[Block]:
    """The section's blocks; ``figure``: the figure's path relative to the document."""
    sets, table, comp = result.sets, result.correlations, result.comparisons
    return [
        Heading("Feature sets: which representation carries the spread?"),
        Paragraph(f"{len(sets)} feature sets on the same {result.n_songs} test songs: "
                  + "; ".join(f"{fs.name} ({fs.source})" for fs in sets)
                  + ". Pearson r of the predicted mean and SD with the raters' per-song "
                  "mean and SD, mean ± SD over seeds, 95 % bootstrap band over test songs "
                  f"({result.n_boot} resamples, the same for every feature set); ceiling: "
                  "sqrt(split-half reliability) of the same songs."),
        Table(_display(table), "Pearson r per feature set (each line names its feature set: "
                               "no cell mixes two); every cell in "
                               f"{table_path(CORRELATIONS_STEM)}"),
        Image(figure, "r per feature set; error bars: 95 % bootstrap band; grey: the "
                      "reliability ceiling and its band"),
        Table(_comparison_display(comp), "Paired comparisons across feature sets on the "
                                         "same test songs (same resamples, same seeds)"),
    ]


def feature_set_caption(predictions: pd.DataFrame, config: dict[str, Any]) -> str:
    """'' without the axis; else which feature set the main tables show."""
    labels = sweep_feature_sets(predictions, config)
    return "" if not labels else (f" [feature set {labels[0]}; the other "
                                  f"{len(labels) - 1} in 'Feature sets' below]")
