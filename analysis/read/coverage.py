"""Which planned methods the report's tables hold in full, in part, or not at all, and why.

A method whose trial file was refused, or whose seeds lack some test songs, leaves the
tables (analysis.compute.rows skips a seed without every test song, and a method without any
such seed). That must never happen without a word: every planned method that is not
complete gets one problem line, and the report's first screen lists them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.read.reference_predictions import reference_cell
from analysis.read.sweep_results import TrialProblem
from mer_uq.data.dataset import DeamDataset
from mer_uq.trial_check import PREDICTED_SPLITS

# Source of a coverage line in problems.csv: "method <name>".
METHOD_SOURCE_PREFIX = "method "


def planned_songs(dataset: DeamDataset) -> dict[str, np.ndarray]:
    """Split -> the song ids the sweep's dataset predicts there (what every trial covers)."""
    return {split: dataset.song_ids(split) for split in PREDICTED_SPLITS}


def _training(method: str) -> str:
    from mer_uq.methods import METHODS

    spec = METHODS.get(method)
    return spec.training if spec is not None else method


def _usable_seeds(predictions: pd.DataFrame, method: str, song_ids: np.ndarray,
                  split: str) -> set[int]:
    """Seeds of ``method`` with every test song (analysis.compute.rows.member_arrays' rule)."""
    rows = predictions[(predictions["method"] == method) & (predictions["split"] == split)]
    wanted = set(np.asarray(song_ids, dtype=np.int64).tolist())
    return {int(seed) for seed, group in rows.groupby("seed")
            if wanted <= set(group["song_id"].astype(np.int64).tolist())}


def _reasons(training: str, problems: list[TrialProblem]) -> str:
    """The problems that concern one training key's files, shortened."""
    mine = [p for p in problems if p.source.startswith((f"trials/{training}__",
                                                       f"{training} seeds"))]
    if not mine:
        return ""
    text = "; ".join(f"{p.source}: {p.reason}" for p in mine[:2])
    return text + (f"; and {len(mine) - 2} more" if len(mine) > 2 else "")


def coverage_problems(config: dict[str, Any], predictions: pd.DataFrame, song_ids: np.ndarray,
                      problems: list[TrialProblem], split: str = "test") -> list[TrialProblem]:
    """One line per planned method the tables do not hold in full (missing or partial)."""
    cell = reference_cell(predictions) if len(predictions) else predictions
    present = sorted(set(cell["method"].astype(str))) if len(cell) else []
    methods = list(config.get("methods") or present)
    planned_seeds = {int(s) for s in config.get("seeds") or cell["seed"].unique()}
    lines = []
    for method in methods:
        usable = _usable_seeds(cell, method, song_ids, split) if method in present else set()
        if usable >= planned_seeds:
            continue
        lost = sorted(planned_seeds - usable)
        why = _reasons(_training(method), problems)
        if not usable:
            status = "MISSING from the tables"
        else:
            status = (f"PARTIAL: {len(usable)} of {len(planned_seeds)} seeds in the tables, "
                      f"seeds {lost[:10]} left out")
        detail = why or f"no usable predictions of seeds {lost[:10]} on every {split} song"
        lines.append(TrialProblem(f"{METHOD_SOURCE_PREFIX}{method}", f"{status} ({detail})"))
    return lines


def first_screen_lines(problems: list[TrialProblem]) -> list[str]:
    """The coverage lines, for the top of the report."""
    return [f"{p.source.removeprefix(METHOD_SOURCE_PREFIX)}: {p.reason}" for p in problems
            if p.source.startswith(METHOD_SOURCE_PREFIX)]
