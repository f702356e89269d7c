"""The paper's published Table 2 and Table 3, as package data with their citation, and
the cell-by-cell comparison with ours.

Stored in analysis/resources/paper_tables.json (every published cell; numbers are facts
copied from Watcharasupat et al., arXiv:2501.11570). A cell is a value with the paper's SD
over seeds (None where it prints none), or "<<0" where the paper prints only that the R²
is far below zero: that cell is compared by its sign ("ours < 0: yes/no").

Which of our rows a paper cell is compared with follows the paper's layout: Table 2's
"Random Seeds" carries ± values, so it is the single-seed models; Table 3's is the
ensemble (analysis.compute.rows.paper_row_key).

The published numbers are DEAM's: a sweep on any DEAM variant (another label version, the
2015 songs, another split) is compared with them, a sweep on a generic ratings table or on
synthetic data never is (``paper_reference``); its report says why instead
(``not_compared_line``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from mer_uq.sources import DEAM, data_source, describe_data

PAPER_TABLES_RESOURCE = "paper_tables.json"
FAR_BELOW_ZERO = "<<0"  # how paper_tables.json marks a cell printed as far below zero
# How such a cell is printed (paper_text), and the one spelling of it every table, finding
# and audit line uses.
FAR_BELOW_TEXT = "<< 0"
# The columns of PaperTables.cells, in order.
CELL_COLUMNS = ("table", "method", "dimension", "metric", "paper_value", "paper_sd",
                "paper_text")


def is_far_below(paper_text: object) -> bool:
    """Whether a published cell is one the paper prints only as far below zero."""
    return paper_text == FAR_BELOW_TEXT


@dataclass(frozen=True)
class PaperTables:
    """Published cells, long: table, method, dimension, metric, paper_value (NaN for a
    "<<0" cell), paper_sd (NaN where none is printed), paper_text (as printed)."""

    cells: pd.DataFrame
    citation: str
    url: str
    provenance: str
    caveat: str
    notes: list[str] = field(default_factory=list)


def _paper_text(value: object, sd: object) -> str:
    if value == FAR_BELOW_ZERO:
        return FAR_BELOW_TEXT
    return f"{value:.2f}" if sd is None else f"{value:.2f} ± {sd:.2f}"


def load_paper_tables() -> PaperTables:
    """Read the bundled published numbers."""
    text = resources.files("analysis").joinpath("resources", PAPER_TABLES_RESOURCE).read_text(
        encoding="utf-8")
    raw = json.loads(text)
    lines = []
    for table in ("table2", "table3"):
        for method, dims in raw[table]["cells"].items():
            for dim, metrics in dims.items():
                for metric, cell in metrics.items():
                    far_below = cell == FAR_BELOW_ZERO
                    value = None if far_below else cell["value"]
                    sd = None if far_below else cell["sd"]
                    lines.append({
                        "table": table, "method": method, "dimension": dim, "metric": metric,
                        "paper_value": np.nan if value is None else float(value),
                        "paper_sd": np.nan if sd is None else float(sd),
                        "paper_text": _paper_text(FAR_BELOW_ZERO if far_below else value, sd),
                    })
    return PaperTables(pd.DataFrame(lines, columns=list(CELL_COLUMNS)), raw["citation"],
                       raw["url"], raw["provenance"], raw["caveat"], list(raw.get("notes", [])))


def paper_reference(record: Mapping[str, Any]) -> PaperTables | None:
    """The published tables a sweep (its sweep.json record) is compared with: the paper's,
    for DEAM data; None for a generic table or synthetic data, which the paper never saw
    (a comparison there would be a number with no meaning)."""
    return load_paper_tables() if data_source(record) == DEAM else None


def not_compared_line(record: Mapping[str, Any]) -> str:
    """The one sentence a report on non-DEAM data says instead of comparing with the
    paper."""
    return ("Not compared with the published paper: its numbers are DEAM's, and this sweep "
            f"ran on {describe_data(record)}.")


def compare_cell(ours: float, ci_low: float, ci_high: float, paper_value: float,
                 paper_text: str) -> dict[str, object]:
    """One published cell against ours: the difference and whether the paper's value lies
    in our bootstrap interval; a "<< 0" cell answers only "is ours below zero?"."""
    if is_far_below(paper_text):
        below = bool(np.isfinite(ours) and ours < 0)
        return {"difference": np.nan, "paper_in_ci": None, "ours_below_zero": below,
                "agrees": below}
    inside = (bool(ci_low <= paper_value <= ci_high)
              if np.isfinite(ci_low) and np.isfinite(ci_high) else None)
    return {"difference": ours - paper_value, "paper_in_ci": inside, "ours_below_zero": None,
            "agrees": inside}
