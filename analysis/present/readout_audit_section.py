"""The readout audit as a reader sees it: the hypotheses' ranking, the best-agreeing one in
a sentence, and every published Table 3 cell next to ours under each readout.

The numbers come from analysis.compute.readout_audit; each readout is presented as a
HYPOTHESIS about how a published table may have been computed, in those words.
"""

from __future__ import annotations

import pandas as pd

from analysis.compute.readout_audit import AUDIT_STEM, READOUTS, TABLE
from analysis.compute.rows import method_label, paper_row_key
from analysis.present.render import Block, Bullets, Heading, Paragraph, Table
from analysis.present.report_paths import table_path
from analysis.present.table_layout import column_name, fmt
from analysis.read.paper_tables import FAR_BELOW_TEXT, is_far_below
from mer_uq import schema
from mer_uq.methods import PAPER_METHODS
from mer_uq.scores import POINT_SCORES

HYPOTHESIS_WORDING = ("Each readout below is a hypothesis about how a published table may "
                      "have been computed, not a claim about anyone's code.")


def best_line(summary: pd.DataFrame) -> str:
    """The one sentence naming the hypothesis that agrees best, and how well."""
    if summary.empty:
        return "No hypothesis could be scored: the sweep has no Table 3 cell of the paper's."
    top = summary.iloc[0]
    tied = summary[(summary["agreeing_cells"] == top["agreeing_cells"])
                   & (summary["same_sign"] == top["same_sign"])]
    also = ("" if len(tied) == 1 else " (tied with " + ", ".join(
        f"{r.labels}, {r.readout_label}" for r in tied.iloc[1:].itertuples()) + ")")
    return (f"Best-agreeing hypothesis: {top['labels']}, spread read as "
            f"{top['readout_label']}{also}: the published value lies inside our 95 % "
            f"interval in {top['paper_in_ci']} of {top['numeric_cells']} numeric cells, has "
            f"our sign in {top['same_sign']} of {top['numeric_cells']}, and ours is below "
            f"zero in {top['ours_below_zero']} of the {top['far_below_cells']} "
            f"'{FAR_BELOW_TEXT}' cells "
            f"({top['agreeing_cells']} of {top['published_cells']} published cells agree).")


def _mark(line: pd.Series) -> str:
    if not isinstance(line.get("paper_text"), str):
        return ""
    if is_far_below(line["paper_text"]):
        return "✓" if line["ours_below_zero"] is True else "✗"
    if line["paper_in_ci"] is True:
        return "✓"
    return "sign" if line["same_sign"] is True else "✗"


def comparison_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Wide, one line per (hypothesis, paper method): 'ours (paper) mark' per cell.
    ✓ = published value inside our interval (<< 0: ours < 0), sign = same sign only."""
    text = [f"{fmt(v)} ({p if isinstance(p, str) else '?'}) {_mark(line)}".rstrip()
            for (_, line), v, p in zip(cells.iterrows(), cells["value"],
                                        cells.get("paper_text", pd.Series(index=cells.index)),
                                        strict=True)]
    frame = cells.assign(text=text, column=[column_name(d, m) for d, m in
                                             zip(cells["dimension"], cells["metric"],
                                                 strict=True)])
    order = [column_name(d, m) for d in schema.DIMENSIONS for m in POINT_SCORES]
    wide = frame.pivot_table(index=["labels", "readout_label", "row_key"], columns="column",
                             values="text", aggfunc="first", sort=False).reindex(columns=order)
    wide = wide.reset_index()
    wide.insert(2, "Method", [method_label(paper_method(k)) for k in wide["row_key"]])
    return wide.drop(columns=["row_key"]).rename(columns={"labels": "labels",
                                                          "readout_label": "readout"})


def paper_method(row_key: str) -> str:
    """The paper method whose Table 3 cell a row is compared with."""
    for method in PAPER_METHODS:
        if paper_row_key(method, TABLE) == row_key:
            return method
    return row_key


def summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "labels": summary["labels"], "readout": summary["readout_label"],
        "inside 95 % CI": [f"{a}/{n}" for a, n in zip(summary["paper_in_ci"],
                                                       summary["numeric_cells"], strict=True)],
        "same sign": [f"{a}/{n}" for a, n in zip(summary["same_sign"],
                                                  summary["numeric_cells"], strict=True)],
        f"{FAR_BELOW_TEXT} reproduced": [f"{a}/{n}" for a, n in zip(summary["ours_below_zero"],
                                                        summary["far_below_cells"],
                                                        strict=True)],
        "agreeing cells": [f"{a}/{n}" for a, n in zip(summary["agreeing_cells"],
                                                       summary["published_cells"],
                                                       strict=True)],
    })


def audit_blocks(cells: pd.DataFrame, summary: pd.DataFrame, heading_level: int = 2
                 ) -> list[Block]:
    """The section: wording, readouts, summary ranking, best line, cell-by-cell table."""
    readouts = "; ".join(f"{r.label}: {r.why}" for r in READOUTS)
    problems = sorted({p for p in cells.get("problem", pd.Series(dtype=str)) if p})
    blocks: list[Block] = [
        Heading("Readout audit: how might the published Table 3 have been computed?",
                heading_level),
        Paragraph(f"{HYPOTHESIS_WORDING} Table 3 is recomputed from the same trial files "
                  "with the two-output methods' spread read out in each way below (the "
                  "random-seeds ensemble and MC dropout have no spread head and stay as "
                  f"they are), on the same bootstrap resamples as above. Readouts: "
                  f"{readouts}."),
        Table(summary_display(summary),
              "Published Table 3 cells our numbers agree with, per hypothesis (best first)"),
        Bullets((best_line(summary), *problems)),
        Table(comparison_table(cells),
              "Cell by cell: ours (published); ✓ = published value inside our 95 % "
              f"bootstrap interval ('{FAR_BELOW_TEXT}': ours below zero too), sign = same "
              "sign only, "
              f"✗ = neither. Every interval is in {table_path(AUDIT_STEM)}"),
    ]
    return blocks


def audit_not_run_blocks(reason: str, heading_level: int = 2) -> list[Block]:
    """The section of a report whose data is not DEAM: its heading and why it is empty."""
    return [Heading("Readout audit", heading_level), Paragraph(f"Not run: {reason}.")]
