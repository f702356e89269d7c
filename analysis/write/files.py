"""One table (CSV, JSON, optionally Markdown) or one figure (PNG), written atomically.

Every file of a report, and of the commands that write a section on its own
(``python -m analysis.feature_axis``), goes through these two functions, so a reader
never sees half a file (mer_uq.sweep_folder's writers).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from analysis.present.figures import DPI
from analysis.present.render import markdown_table
from mer_uq.sweep_folder import write_atomically, write_bytes_atomically, write_text_atomically


def write_frame(frame: pd.DataFrame, stem: Path, markdown: bool = False) -> list[Path]:
    """A table as CSV and JSON (records, NaN -> null), and Markdown when asked."""
    paths = [write_atomically(stem.with_suffix(".csv"), lambda p: frame.to_csv(p, index=False))]
    records = json.loads(frame.to_json(orient="records"))
    paths.append(write_text_atomically(stem.with_suffix(".json"),
                                       json.dumps(records, indent=1, ensure_ascii=False)))
    if markdown:
        paths.append(write_text_atomically(stem.with_suffix(".md"), markdown_table(frame) + "\n"))
    return paths


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, rendered in memory (and closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def save_figure(fig: Figure | bytes, path: Path) -> Path:
    """Render to memory (unless given the PNG bytes already), then write atomically, so a
    reader never sees half a PNG."""
    return write_bytes_atomically(path, fig if isinstance(fig, bytes) else figure_png(fig))
