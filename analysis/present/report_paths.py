"""The names inside a report folder: its tables and figures folders and its two documents.

The document refers to its files by these relative paths (captions such as "every cell in
tables/cells.csv", image links), and the writer (analysis.write) writes them there; the
sweep reads back nothing (it prints what ``write_report`` returns).
"""

from __future__ import annotations

TABLES_DIRNAME = "tables"
FIGURES_DIRNAME = "figures"
REPORT_MARKDOWN = "report.md"
REPORT_HTML = "report.html"


def table_path(stem: str, suffix: str = ".csv") -> str:
    """A table file's path relative to the report folder, as the document cites it."""
    return f"{TABLES_DIRNAME}/{stem}{suffix}"


def figure_path(name: str) -> str:
    """A figure's path relative to the report folder (the document's image link)."""
    return f"{FIGURES_DIRNAME}/{name}.png"
