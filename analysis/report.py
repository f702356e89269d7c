"""`python -m analysis.report DIR`: the report's command line (the work: analysis.write)."""

from __future__ import annotations

import sys

from analysis.write.report_files import main, write_report

__all__ = ["main", "write_report"]

if __name__ == "__main__":
    sys.exit(main())
