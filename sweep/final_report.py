"""The end of a sweep: the analysis report, with Table 2 and Table 3 on the console.

The tables printed are the report's own (DIR/report/tables/table{2,3}.md), so the console
and the report can never disagree. A report that fails loses nothing: the trial files stay,
and the one line printed says how to rebuild the report from them.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPORT_TABLES: tuple[tuple[str, str], ...] = (
    ("table2", "Table 2: predicted vs empirical MEAN (test split)"),
    ("table3", "Table 3: predicted vs empirical SD (test split)"),
)


def _print_report_tables(report_dir: Path) -> None:
    from analysis.report import TABLES_DIRNAME

    for stem, title in REPORT_TABLES:
        table = report_dir / TABLES_DIRNAME / f"{stem}.md"
        if table.is_file():
            print(f"\n{title}\n{table.read_text()}", flush=True)


def write_final_report(sweep_dir: Path) -> bool:
    """analysis.report.write_report(DIR) and its two tables on the console; False (and one
    line on stderr) when the report fails."""
    try:
        from analysis.report import write_report

        report = Path(write_report(sweep_dir))
    except Exception as err:  # the trials are safe on disk: say how to retry, never lose them
        print(f"[sweep] report failed ({type(err).__name__}: {err}); the trial files are "
              f"kept: rebuild it with python -m analysis.report {sweep_dir}", file=sys.stderr)
        return False
    _print_report_tables(report.parent)
    print(f"[sweep] report: {report}", flush=True)
    return True
