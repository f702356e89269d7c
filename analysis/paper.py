"""The paper's published Table 2 and Table 3, as package data with their citation.

Stored in analysis/resources/paper_tables.json. A cell is filled only where a source
quoting the paper was actually read; an unknown cell is null here and NaN in the frame,
and the report prints it as unknown rather than guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

PAPER_TABLES_RESOURCE = "paper_tables.json"


@dataclass(frozen=True)
class PaperTables:
    """Published cells (long: table, method, dimension, metric, paper_value) + provenance."""

    cells: pd.DataFrame
    citation: str
    url: str
    provenance: str
    caveat: str
    ranges: dict[str, dict[str, Any]] = field(default_factory=dict)  # table -> metric -> range


def load_paper_tables() -> PaperTables:
    """Read the bundled published numbers."""
    text = resources.files("analysis").joinpath("resources", PAPER_TABLES_RESOURCE).read_text(
        encoding="utf-8")
    raw = json.loads(text)
    lines = []
    ranges = {}
    for table in ("table2", "table3"):
        ranges[table] = raw[table].get("ranges", {})
        for method, dims in raw[table]["cells"].items():
            for dim, metrics in dims.items():
                for metric, value in metrics.items():
                    lines.append({"table": table, "method": method, "dimension": dim,
                                  "metric": metric,
                                  "paper_value": np.nan if value is None else float(value)})
    return PaperTables(pd.DataFrame(lines), raw["citation"], raw["url"], raw["provenance"],
                       raw["caveat"], ranges)
