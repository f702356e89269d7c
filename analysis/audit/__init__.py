"""`python -m analysis.audit DIR [OTHER_LABELS_DIR]`: the readout audit's command line.

The numbers: analysis.compute.readout_audit; the section: analysis.present.
readout_audit_section. A package (not a module file) so that ``python -m analysis.audit``
keeps its name while the audit's work lives in its stage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.compute.bootstrap import DEFAULT_N_BOOT
from analysis.compute.readout_audit import AuditError, run_audit
from analysis.present.readout_audit_section import audit_blocks
from analysis.present.render import to_markdown
from analysis.read.sweep_results import FOLDER_INPUT_ERRORS
from mer_uq.cli_args import non_negative_int
from mer_uq.sweep_folder import write_atomically


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.audit",
        description="Recompute Table 3 under named readouts of the spread (and the other "
                    "label version, given a second sweep folder) and compare with the paper")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("other_labels_dir", type=Path, nargs="?", default=None,
                        help="a sweep of the same methods on the other label version "
                             "(--keep-swap vs corrected)")
    parser.add_argument("--n-boot", type=non_negative_int, default=DEFAULT_N_BOOT,
                        help="bootstrap resamples of the test songs (0: no intervals)")
    parser.add_argument("--csv", type=Path, default=None,
                        help="also write every audit cell to this CSV")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folders = [args.sweep_dir] + ([args.other_labels_dir] if args.other_labels_dir else [])
    try:
        cells, summary = run_audit(folders, args.n_boot)
    except (AuditError, *FOLDER_INPUT_ERRORS) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.csv is not None:
        write_atomically(args.csv, lambda p: cells.to_csv(p, index=False))
    print(to_markdown(audit_blocks(cells, summary, heading_level=1)))
    return 0
