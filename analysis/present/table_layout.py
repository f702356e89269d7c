"""Long-format cells -> the tables as a reader sees them.

The computation (analysis.compute.table_cells) is long-format, one line per cell, because that is
what CSV/JSON consumers and tests want. The paper prints wide tables: rows = methods,
columns = (dimension, metric), "mean ± SD" per cell. This module does only that
reshaping and number formatting, plus the "ours vs paper" and "ceiling" lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.compute.rows import GROUP_ORDER, PAPER, method_label
from analysis.read.paper_tables import is_far_below
from mer_uq import schema
from mer_uq.scores import PEARSON, POINT_SCORES, R2, SPEARMAN

POINT_SCORE_LABELS: dict[str, str] = {R2: "R²", PEARSON: "r", SPEARMAN: "ρ"}
GROUP_TITLES = {
    PAPER: "",
    "extra": "beyond the paper: more methods",
    "ensemble": "beyond the paper: deep ensembles (mixture over seeds)",
    "conformal": "beyond the paper: SD calibrated by split conformal on the validation songs",
    "baseline": "beyond the paper: baselines",
}
CEILING_LABEL = "Reliability ceiling (test songs)"
DIGITS = 3


def fmt(value: float, digits: int = DIGITS) -> str:
    """A number, or 'n/a' for an undefined one (NaN)."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def fmt_cell(value: float, sd: float, single: bool) -> str:
    """'mean ± SD' over seeds, or one value for a single prediction."""
    if single or not np.isfinite(sd):
        return fmt(value)
    return f"{fmt(value)} ± {fmt(sd)}"


def fmt_bounds(low: float, high: float, digits: int = DIGITS) -> str:
    """'[low, high]', with 'n/a' for an undefined end."""
    return f"[{fmt(low, digits)}, {fmt(high, digits)}]"


def fmt_interval(low: float, high: float) -> str:
    """'[low, high]', or '' where either end is undefined (a cell without an interval)."""
    return "" if not (np.isfinite(low) and np.isfinite(high)) else fmt_bounds(low, high)


def fmt_estimate(value: float, low: float, high: float, digits: int = DIGITS) -> str:
    """'value [low, high]': an estimate with its interval ('n/a' for an undefined part)."""
    return f"{fmt(value, digits)} {fmt_bounds(low, high, digits)}"


def column_name(dim: str, metric: str) -> str:
    return f"{dim.capitalize()} {POINT_SCORE_LABELS[metric]}"


def _wide(cells: pd.DataFrame, cell_text: pd.Series) -> pd.DataFrame:
    """Pivot formatted cell text into paper layout, rows in print order with group rules."""
    frame = cells.assign(text=cell_text, column=[column_name(d, m) for d, m in
                                                  zip(cells["dimension"], cells["metric"],
                                                      strict=True)])
    order = [column_name(d, m) for d in schema.DIMENSIONS for m in POINT_SCORES]
    wide = frame.pivot_table(index="row_key", columns="column", values="text",
                             aggfunc="first").reindex(columns=order)
    meta = frame.drop_duplicates("row_key").set_index("row_key")
    lines = []
    for group in GROUP_ORDER:
        keys = [k for k in meta.index if meta.at[k, "group"] == group]
        if not keys:
            continue
        if GROUP_TITLES[group]:
            lines.append({"Method": f"— {GROUP_TITLES[group]} —", **dict.fromkeys(order, "")})
        for key in keys:
            lines.append({"Method": meta.at[key, "row_label"],
                          **wide.loc[key].fillna("n/a").to_dict()})
    return pd.DataFrame(lines, columns=["Method", *order])


PAPER_LINE = "↳ paper"


def _paper_mark(line: pd.Series) -> str:
    """The published cell as printed, marked by whether ours agrees: ✓ = the paper's value
    lies in our bootstrap interval (or, for "<< 0", ours is below zero too)."""
    text = line["paper_text"]
    if not isinstance(text, str):
        return ""
    agrees = line["agrees"]
    return text if agrees is None or pd.isna(agrees) else f"{text} {'✓' if agrees else '✗'}"


def paper_layout(cells: pd.DataFrame, ceilings: pd.DataFrame | None, table: str,
                 with_interval: bool = False, with_paper: bool = False) -> pd.DataFrame:
    """One of the paper's tables: 'mean ± SD' cells (optionally the bootstrap interval
    instead), group rules, and the reliability ceiling as the last line. ``with_paper``
    adds, under each of the paper's rows, the published cells."""
    part = cells[cells["table"] == table].reset_index(drop=True)
    if with_interval:
        text = pd.Series([fmt_interval(lo, hi) or "n/a" for lo, hi in
                          zip(part["ci_low"], part["ci_high"], strict=True)])
    else:
        text = pd.Series([fmt_cell(v, s, bool(single)) for v, s, single in
                          zip(part["value"], part["sd_over_seeds"], part["single"],
                              strict=True)])
    wide = _wide(part, text)
    if with_paper and "paper_text" in part.columns:
        published = part[part["paper_text"].map(lambda t: isinstance(t, str))]
        lines = []
        for _, line in wide.iterrows():
            lines.append(line.to_dict())
            mine = published[published["row_label"] == line["Method"]]
            if len(mine):
                lines.append({"Method": PAPER_LINE, **{
                    column_name(c["dimension"], c["metric"]): _paper_mark(c)
                    for _, c in mine.iterrows()}})
        wide = pd.DataFrame(lines, columns=wide.columns).fillna("")
    if ceilings is not None and len(part):
        target = part["target"].iloc[0]
        ceil = ceilings[ceilings["target"] == target].set_index(["dimension", "metric"])
        line = {"Method": CEILING_LABEL}
        for dim in schema.DIMENSIONS:
            for metric in POINT_SCORES:
                c = ceil.loc[(dim, metric)]
                line[column_name(dim, metric)] = (
                    fmt_interval(c["ceiling_ci_low"], c["ceiling_ci_high"]) if with_interval
                    else fmt(c["ceiling"]))
        wide = pd.concat([wide, pd.DataFrame([line])], ignore_index=True)
    return wide


def paper_comparison(cells: pd.DataFrame, table: str) -> pd.DataFrame:
    """Every published cell of one table, long: ours, our interval, the paper's value, the
    difference, and whether the paper's value lies in our interval ("<< 0" cells: whether
    ours is below zero)."""
    part = cells[(cells["table"] == table)
                 & cells["paper_text"].map(lambda t: isinstance(t, str))]
    lines = []
    for _, c in part.iterrows():
        far_below = is_far_below(c["paper_text"])
        lines.append({
            "Method": c["row_label"], "paper method": method_label(c["paper_method"]),
            "cell": column_name(c["dimension"], c["metric"]),
            "ours": fmt_cell(c["value"], c["sd_over_seeds"], bool(c["single"])),
            "our 95% interval": fmt_interval(c["ci_low"], c["ci_high"]),
            "paper": c["paper_text"],
            "difference": "" if far_below else fmt(c["difference"]),
            "paper in our interval": "" if far_below else _yes_no(c["paper_in_ci"]),
            "ours < 0": _yes_no(c["ours_below_zero"]) if far_below else "",
        })
    return pd.DataFrame(lines)


def _yes_no(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return "yes" if bool(value) else "no"
