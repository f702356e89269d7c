"""python -m mer_uq.data: summarise a DEAM folder (default: the bundled copy)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mer_uq.cli_args import count
from mer_uq.data.dataset import load_deam
from mer_uq.data.errors import DeamDataError
from mer_uq.data.summary import format_summary, summarise


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mer_uq.data",
        description="Songs per year and split, genres, raters, swap audit and reliability "
        "ceilings of a DEAM folder.",
    )
    parser.add_argument(
        "--deam",
        type=Path,
        default=None,
        help="DEAM folder in the official layout (default: bundled copy)",
    )
    parser.add_argument(
        "--split-file",
        type=Path,
        default=None,
        help="song_id,split CSV (default: the bundled split)",
    )
    parser.add_argument("--include-2015", action="store_true", help="add the 58 songs of 2015")
    parser.add_argument(
        "--no-fix-swap",
        action="store_true",
        help="keep the raw valence/arousal columns of swapped subsets",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=count(1), default=200, help="split-half repeats")
    parser.add_argument("--boot", type=count(1), default=1000,
                        help="bootstrap resamples of songs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the reliability estimate")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        ds = load_deam(
            args.deam,
            include_2015=args.include_2015,
            fix_swap=not args.no_fix_swap,
            split_file=args.split_file,
        )
        summary = summarise(ds, n_repeats=args.repeats, n_boot=args.boot, seed=args.seed)
    except DeamDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
