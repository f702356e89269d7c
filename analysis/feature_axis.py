"""`python -m analysis.feature_axis DIR_A DIR_B [DIR_C ...] --out OUT`: the same methods on
several feature sets, one sweep folder each.

Reads every folder (analysis.compute.feature_axis.load_feature_sets refuses folders that do
not share their test songs and labels: every comparison is paired on the same songs),
computes the comparison and writes OUT/feature_axis.{md,csv,json},
OUT/feature_axis_comparisons.{csv,json} and OUT/feature_axis.png. The report of one sweep
with a feature axis (``--features A,B``) shows the same section.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.compute.bootstrap import DEFAULT_N_BOOT
from analysis.compute.ceilings import (
    DEFAULT_BOOT,
    DEFAULT_REPEATS,
    ceiling_cells,
    reliability_of_songs,
)
from analysis.compute.feature_axis import (
    FeatureAxisError,
    feature_axis_result,
    load_feature_sets,
)
from analysis.present.feature_axis_section import FIGURE_NAME, axis_figure, feature_axis_blocks
from analysis.present.render import Block, to_markdown
from analysis.read.sweep_results import FOLDER_INPUT_ERRORS
from analysis.write.files import save_figure, write_frame
from mer_uq.cli_args import count, non_negative_int
from mer_uq.sweep_folder import write_text_atomically

__all__ = ["FeatureAxisError", "main", "run"]


def run(folders: list[Path], out: Path, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
        reliability_repeats: int = DEFAULT_REPEATS, reliability_boot: int = DEFAULT_BOOT
        ) -> list[Block]:
    """Several sweep folders, one feature set each: write OUT/feature_axis.* and return
    the section's blocks."""
    sets, dataset, song_ids = load_feature_sets(folders)
    ceilings = ceiling_cells(reliability_of_songs(dataset.ratings, song_ids,
                                                  reliability_repeats, reliability_boot, seed))
    out.mkdir(parents=True, exist_ok=True)
    result = feature_axis_result(sets, dataset, song_ids, ceilings, n_boot, seed)
    for stem, frame in result.frames().items():
        write_frame(frame, out / stem)
    figure = save_figure(axis_figure(result.correlations), out / f"{FIGURE_NAME}.png")
    blocks = feature_axis_blocks(result, figure.name)
    write_text_atomically(out / f"{FIGURE_NAME}.md", to_markdown(blocks))
    return blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.feature_axis",
                                     description="Compare sweeps of the same methods on "
                                                 "different feature sets")
    parser.add_argument("folders", type=Path, nargs="+", help="one sweep folder per feature set")
    parser.add_argument("--out", type=Path, required=True, help="folder for feature_axis.*")
    parser.add_argument("--n-boot", type=non_negative_int, default=DEFAULT_N_BOOT,
                        help="bootstrap resamples of the test songs (0: no intervals)")
    parser.add_argument("--reliability-repeats", type=count(1), default=DEFAULT_REPEATS,
                        help="random half splits per song of the test songs' reliability")
    parser.add_argument("--reliability-boot", type=count(1), default=DEFAULT_BOOT,
                        help="bootstrap resamples of the test songs' reliability")
    args = parser.parse_args(argv)
    try:
        blocks = run(args.folders, args.out, args.n_boot,
                     reliability_repeats=args.reliability_repeats,
                     reliability_boot=args.reliability_boot)
    except (FeatureAxisError, *FOLDER_INPUT_ERRORS) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(to_markdown(blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
