"""`python -m analysis.report DIR`: a sweep folder -> DIR/report/ (tables, figures,
report.md, report.html), optionally logged to one W&B summary run.

The command line only: it checks the folder (one line, exit 2, before any work) and calls
analysis.write.report_files.write_report, which reads (analysis.read), computes
(analysis.compute), presents (analysis.present) and writes (analysis.write).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from analysis.compute.pipeline import AnalysisSettings
from analysis.read.sweep_results import FOLDER_INPUT_ERRORS
from analysis.write.report_files import ReportWritten, write_report
from analysis.write.wandb_summary import DEFAULT_MODE, DEFAULT_PROJECT, WANDB_MODES
from mer_uq.cli_args import count, non_negative_int
from mer_uq.sweep_folder import (
    REPORT_DIR,
    SWEEP_JSON,
    TRIAL_SUFFIX,
    TRIALS_DIR,
    looks_like_sweep,
)

__all__ = ["ReportWritten", "check_sweep_dir", "main", "write_report"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m analysis.report",
                                     description="Sweep folder -> DIR/report/")
    parser.add_argument("sweep_dir", type=Path, help="folder with trials/*.parquet, sweep.json")
    parser.add_argument("--wandb", action="store_true", help="log tables and figures to W&B")
    parser.add_argument("--wandb-mode", default=DEFAULT_MODE, choices=WANDB_MODES)
    parser.add_argument("--wandb-project", default=DEFAULT_PROJECT)
    parser.add_argument("--n-boot", type=non_negative_int, default=AnalysisSettings.n_boot,
                        help="bootstrap resamples of the test songs (0: no intervals)")
    parser.add_argument("--reliability-repeats", type=count(1),
                        default=AnalysisSettings.reliability_repeats,
                        help="random half splits per song of the test songs' reliability "
                             "(the ceilings)")
    parser.add_argument("--reliability-boot", type=count(1),
                        default=AnalysisSettings.reliability_boot,
                        help="bootstrap resamples of the test songs' reliability (the ceilings)")
    parser.add_argument("--summary-reliability-repeats", type=count(1),
                        default=AnalysisSettings.summary_reliability_repeats,
                        help="random half splits per song of the data summary's reliability "
                             "over all songs")
    parser.add_argument("--summary-reliability-boot", type=count(1),
                        default=AnalysisSettings.summary_reliability_boot,
                        help="bootstrap resamples of the data summary's reliability over all "
                             "songs (its cost grows with the songs)")
    parser.add_argument("--population-sd", action="store_true",
                        help="SD across the random seeds with ddof 0 (default: the paper's "
                             "eq. 5, n - 1)")
    return parser.parse_args(argv)


class SweepDirError(ValueError):
    """The folder given to the report is not a sweep, or its report cannot be written."""


def check_sweep_dir(sweep_dir: Path) -> None:
    """Refuse, in one line, a folder the report cannot read or write (before any work)."""
    if not sweep_dir.is_dir():
        raise SweepDirError(f"{sweep_dir}: no such folder (give the --out folder of a sweep)")
    if not looks_like_sweep(sweep_dir):
        raise SweepDirError(f"{sweep_dir} is not a sweep folder: no {SWEEP_JSON} and no "
                            f"{TRIALS_DIR}/*{TRIAL_SUFFIX}")
    target = sweep_dir / REPORT_DIR
    if target.exists() and not target.is_dir():
        raise SweepDirError(f"{target} is a file; the report needs that name for its folder")
    try:  # a real write: root passes os.access checks on read-only mounts
        tempfile.TemporaryFile(dir=sweep_dir).close()  # the report is staged beside it
    except OSError as err:
        raise SweepDirError(f"{target} cannot be written ({err.strerror})") from err


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = AnalysisSettings(n_boot=args.n_boot, reliability_repeats=args.reliability_repeats,
                                reliability_boot=args.reliability_boot,
                                summary_reliability_repeats=args.summary_reliability_repeats,
                                summary_reliability_boot=args.summary_reliability_boot,
                                seeds_sd_ddof=0 if args.population_sd else 1)
    try:
        check_sweep_dir(args.sweep_dir)
        written = write_report(args.sweep_dir, use_wandb=args.wandb,
                               wandb_mode=args.wandb_mode, wandb_project=args.wandb_project,
                               settings=settings)
    except (SweepDirError, *FOLDER_INPUT_ERRORS) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(written.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
