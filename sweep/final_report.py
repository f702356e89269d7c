"""The end of a sweep: the analysis report, with Table 2 and Table 3 on the console.

The analysis is a separate layer and may be missing or fail on some corner of a sweep; the
headline tables must appear anyway, so a failure here falls back to sweep.summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from mer_uq.sweep_folder import TRIALS_DIR

REPORT_TABLES: tuple[tuple[str, str], ...] = (
    ("table2", "Table 2: predicted vs empirical MEAN (test split)"),
    ("table3", "Table 3: predicted vs empirical SD (test split)"),
)


def _print_report_tables(report_dir: Path) -> None:
    for stem, title in REPORT_TABLES:
        table = report_dir / "tables" / f"{stem}.md"
        if table.is_file():
            print(f"\n{title}\n{table.read_text()}", flush=True)


def report_or_tables(sweep_dir: Path, songs: pd.DataFrame) -> None:
    """analysis.report.write_report(DIR) when it works; else the tables from the files."""
    try:
        from analysis.report import write_report

        report = Path(write_report(sweep_dir))
        _print_report_tables(report.parent)
        print(f"[sweep] report: {report}", flush=True)
        return
    except Exception as err:  # the analysis is optional here: never lose the tables
        print(f"[sweep] analysis report unavailable ({type(err).__name__}: {err}); "
              "printing the tables from the trial files", file=sys.stderr)
    from sweep.summary import print_paper_tables

    print_paper_tables(sweep_dir / TRIALS_DIR, songs)
