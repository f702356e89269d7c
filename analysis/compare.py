"""Several sweep folders side by side: `python -m analysis.compare DIR_A DIR_B [...]`.

Every cell of Tables 2 and 3 that the folders share, with the difference to the first
folder and its paired bootstrap interval. Paired means the same resampled test songs: each
folder is analysed with the same bootstrap seed over the same test songs, so row k of every
folder's index matrix draws the same songs. Folders whose test songs differ are refused,
because then no cell can be paired.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.compute.bootstrap import paired_bootstrap
from analysis.compute.pipeline import AnalysisSettings, ReportData, compute_report_data
from analysis.present.table_layout import column_name, fmt, fmt_interval
from analysis.read.sweep_results import FOLDER_INPUT_ERRORS
from mer_uq.cli_args import count
from mer_uq.sweep_folder import SWEEP_JSON, SweepFolderError, refuse_contract_path

CELL_KEY = ["table", "row_key", "dimension", "metric"]


class FolderMismatch(ValueError):
    """The folders cannot be paired (different test songs)."""


def compare_data(data: list[ReportData], names: list[str]) -> pd.DataFrame:
    """Long table: one line per shared cell and later folder: value in the first folder,
    in this one, the difference (this - first) and its paired 95 % interval."""
    first = data[0]
    for name, other in zip(names[1:], data[1:], strict=True):
        if not np.array_equal(first.song_ids, other.song_ids):
            raise FolderMismatch(f"{name}: its test songs differ from {names[0]}'s; "
                                 "cells cannot be paired")
    base = first.cells.set_index(CELL_KEY)
    lines = []
    for name, other in zip(names[1:], data[1:], strict=True):
        cells = other.cells.set_index(CELL_KEY)
        for key in base.index.intersection(cells.index):
            a, b = base.loc[key], cells.loc[key]
            line = {"table": key[0], "row": a["row_label"], "cell": column_name(key[2], key[3]),
                    names[0]: float(a["value"]), "other": name, "value": float(b["value"]),
                    "difference": float(b["value"] - a["value"]), "ci_low": np.nan,
                    "ci_high": np.nan, "p_bootstrap": np.nan}
            if key in first.tables.boot and key in other.tables.boot:
                paired = paired_bootstrap(float(b["value"]), float(a["value"]),
                                          other.tables.boot[key], first.tables.boot[key])
                line.update(ci_low=paired.ci_low, ci_high=paired.ci_high,
                            p_bootstrap=paired.p_value)
            lines.append(line)
    return pd.DataFrame(lines)


def compare_folders(folders: list[Path], settings: AnalysisSettings | None = None
                    ) -> pd.DataFrame:
    """Python entry: analyse every folder with the same settings and compare them."""
    settings = settings or AnalysisSettings()
    return compare_data([compute_report_data(f, settings) for f in folders],
                        folder_names(folders))


def folder_names(folders: list[Path]) -> list[str]:
    """Each folder's name, or its whole path where two folders share a name."""
    short = [f.name for f in folders]
    return short if len(set(short)) == len(short) else [str(f) for f in folders]


def to_markdown(frame: pd.DataFrame, first: str) -> str:
    shown = pd.DataFrame({
        "table": frame["table"], "row": frame["row"], "cell": frame["cell"],
        first: frame[first].map(fmt), "vs": frame["other"], "value": frame["value"].map(fmt),
        "difference": frame["difference"].map(fmt),
        "95% paired interval": [fmt_interval(lo, hi) for lo, hi in
                                zip(frame["ci_low"], frame["ci_high"], strict=True)]})
    head = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns) + "\n"
    return head + "\n".join("| " + " | ".join(map(str, r)) + " |"
                            for r in shown.itertuples(index=False)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.compare",
                                     description="sweep folders side by side, cell by cell")
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--n-boot", type=count(0), default=AnalysisSettings.n_boot)
    parser.add_argument("--csv", type=Path, default=None, help="also write the long table")
    args = parser.parse_args(argv)
    if len(args.folders) < 2:
        print("analysis.compare: give at least two sweep folders", file=sys.stderr)
        return 2
    for folder in args.folders:
        if not (folder / SWEEP_JSON).is_file():
            print(f"analysis.compare: {folder}: not a sweep folder (no {SWEEP_JSON})",
                  file=sys.stderr)
            return 2
    try:  # the long table never replaces a sweep's own files
        if args.csv is not None:
            refuse_contract_path(args.csv, "--csv")
    except SweepFolderError as err:
        print(f"analysis.compare: {err}", file=sys.stderr)
        return 2
    names = [str(f) for f in args.folders]
    if len(set(names)) < len(names):
        print("analysis.compare: a folder is given twice", file=sys.stderr)
        return 2
    try:
        frame = compare_folders(args.folders, AnalysisSettings(n_boot=args.n_boot))
    except (FolderMismatch, *FOLDER_INPUT_ERRORS) as exc:
        print(f"analysis.compare: {exc}", file=sys.stderr)
        return 2
    if args.csv is not None:
        frame.to_csv(args.csv, index=False)
    sys.stdout.write(to_markdown(frame, folder_names(args.folders)[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
