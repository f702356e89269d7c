"""Read a sweep folder (DIR/trials/*.parquet + DIR/sweep.json) without letting one bad
file sink the report.

A sweep of hundreds of trials on a cluster can lose a file (a preempted worker) or leave a
truncated one. The report must still be written for everything that did arrive, and must
say, by name, what did not: that is why loading collects problems instead of raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer_uq import schema, sweep_folder, trial_check
from mer_uq.data.errors import DeamDataError
from mer_uq.sweep_folder import SweepFolderError, TrialRecordKey

# What the analysis commands report in one line (exit 2) when a sweep folder, or the data
# its record names, cannot be read: a bad folder or sweep.json, a data file moved or
# damaged since the sweep ran. Anything else is a bug and keeps its traceback.
FOLDER_INPUT_ERRORS: tuple[type[Exception], ...] = (SweepFolderError, DeamDataError,
                                                    FileNotFoundError)

# Predictions column of a sweep with a feature axis: the trial record's feature-set label
# (sweep.study.resolve_feature_sets), so that no table cell mixes two feature sets.
FEATURE_SET_COLUMN = "feature_set"
_FLOAT_COLUMNS = tuple(
    c for d in schema.DIMENSIONS for c in (schema.PRED_MU[d], schema.PRED_SIGMA[d])
)


@dataclass(frozen=True)
class TrialProblem:
    """One thing that went wrong while reading the sweep, named so a reader can find it."""

    source: str  # a file name relative to the sweep folder, or "<training> seeds [...]"
    reason: str


@dataclass
class SweepResults:
    """Everything the analysis needs from a sweep folder, plus what could not be read."""

    sweep_dir: Path
    config: dict[str, Any]
    predictions: pd.DataFrame  # schema.PREDICTION_COLUMNS + hp_* columns, all trials
    loaded_files: list[str] = field(default_factory=list)
    trial_metadata: dict[str, Any] = field(default_factory=dict)  # file name -> parsed JSON
    file_seeds: dict[str, list[int]] = field(default_factory=dict)  # file name -> seeds in it
    problems: list[TrialProblem] = field(default_factory=list)


def training_of_file(path: Path) -> str:
    """The training key encoded in a trial file's name."""
    return sweep_folder.training_of_stem(path.stem)


def sweep_config_with_problems(sweep_dir: Path) -> tuple[dict[str, Any], list[TrialProblem]]:
    """sweep.json as a dict (mer_uq.sweep_folder.read_sweep_config) with a missing one as a
    problem of the report, not a crash."""
    config, problem = sweep_folder.read_sweep_config(sweep_dir)
    return config, [] if problem is None else [TrialProblem(sweep_folder.SWEEP_JSON, problem)]


def read_checked_trial(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One trial Parquet (mer_uq.sweep_folder.read_trial_file) checked against the writer's
    guarantees and typed for the analysis, with its metadata; raises ValueError (or an Arrow
    error) with a readable reason when the file is not a usable trial."""
    frame, metadata = sweep_folder.read_trial_file(path)
    problem = trial_check.frame_problem(frame)  # the writer's guarantees, as resume checks
    if problem is not None:
        raise ValueError(problem)
    frame = frame.astype({c: "float64" for c in _FLOAT_COLUMNS})
    frame = frame.astype({"song_id": "int64", "seed": "int64", "split": str, "method": str})
    return frame, metadata


def _missing_seed_problems(config: dict[str, Any], seeds_by_training: dict[str, set[int]]
                           ) -> list[TrialProblem]:
    """Compare the (training, seed) pairs sweep.json promised with those that arrived, so
    a trial whose file never got written is named even though no file exists to name."""
    problems = []
    expected_seeds = {int(s) for s in config.get("seeds", [])}
    for training in config.get("trainings", []):
        got = seeds_by_training.get(training, set())
        lost = sorted(expected_seeds - got)
        if lost:
            problems.append(TrialProblem(
                f"{training} seeds {lost}",
                "no predictions: trial file missing or unreadable",
            ))
    return problems


def load_sweep(sweep_dir: Path, planned_songs: Mapping[str, np.ndarray] | None = None
               ) -> SweepResults:
    """Read every trusted trial file of a sweep folder (mer_uq.trial_check: a file of
    the folder itself, planned by sweep.json, whose rows pass the writer's checks and, when
    given, cover ``planned_songs``); never raises for a bad trial file, names it instead."""
    sweep_dir = Path(sweep_dir)
    config, problems = sweep_config_with_problems(sweep_dir)
    trial_dir = sweep_dir / sweep_folder.TRIALS_DIR
    frames: list[pd.DataFrame] = []
    loaded: list[str] = []
    metadata: dict[str, Any] = {}
    file_seeds: dict[str, list[int]] = {}
    seeds_by_training: dict[str, set[int]] = {}
    for path in sweep_folder.trial_files(trial_dir):
        name = str(path.relative_to(sweep_dir))
        untrusted = trial_check.path_problem(sweep_dir, path)
        try:
            if untrusted is None:
                frame, meta = read_checked_trial(path)
                row_seeds = sorted(int(x) for x in frame["seed"].unique())
                untrusted = (trial_check.plan_problem(meta, config, path.stem, row_seeds)
                             or trial_check.frame_problem(frame, meta, planned_songs))
        except Exception as exc:  # any unreadable file is reported, never fatal
            problems.append(TrialProblem(name, f"corrupt or invalid: {type(exc).__name__}: {exc}"))
            continue
        if untrusted is not None:
            problems.append(TrialProblem(name, f"not used: {untrusted}"))
            continue
        feature_set = meta.get(TrialRecordKey.FEATURE_SET)
        if isinstance(feature_set, dict):  # a feature-axis trial
            frame[FEATURE_SET_COLUMN] = str(feature_set.get("label"))
        frames.append(frame)
        loaded.append(name)
        metadata[name] = meta
        file_seeds[name] = sorted(int(x) for x in frame["seed"].unique())
        seeds_by_training.setdefault(training_of_file(path), set()).update(
            int(s) for s in frame["seed"].unique())
    problems.extend(_missing_seed_problems(config, seeds_by_training))
    if not frames:
        raise FileNotFoundError(
            f"no readable trial file under {trial_dir}; problems: "
            + "; ".join(f"{p.source}: {p.reason}" for p in problems))
    predictions = pd.concat(frames, ignore_index=True)
    key = list(schema.PREDICTION_KEY_COLUMNS)
    key += [c for c in (*schema.DATA_AXIS_COLUMNS, FEATURE_SET_COLUMN)
            if c in predictions.columns]  # data-axes and feature-axis cells
    duplicated = predictions.duplicated(key, keep="first")
    if duplicated.any():
        dup = predictions.loc[duplicated, ["method", "seed"]].drop_duplicates()
        problems.append(TrialProblem(
            "duplicate predictions",
            "kept the first of repeated (song, split, method, seed) rows for "
            + ", ".join(f"{m} seed {s}" for m, s in dup.itertuples(index=False)),
        ))
        predictions = predictions.loc[~duplicated].reset_index(drop=True)
    predictions = predictions.sort_values(key, kind="stable").reset_index(drop=True)
    return SweepResults(sweep_dir, config, predictions, loaded, metadata, file_seeds, problems)


def trial_overview(sweep: SweepResults) -> pd.DataFrame:
    """One line per trial file read: its training, seeds and, where the trial record
    (the trial file's schema metadata) has them, best validation loss and duration."""
    lines = []
    for name in sweep.loaded_files:
        meta = sweep.trial_metadata.get(name) or {}
        metrics = meta.get(TrialRecordKey.METRICS)
        metrics = metrics if isinstance(metrics, dict) else {}
        lines.append({
            "file": name,
            "training": meta.get(TrialRecordKey.TRAINING, training_of_file(Path(name))),
            "seeds": " ".join(str(s) for s in sweep.file_seeds.get(name, [])),
            "val_loss": metrics.get("val_loss", float("nan")),
            "duration_s": meta.get(TrialRecordKey.DURATION_S, float("nan")),
        })
    frame = pd.DataFrame(lines, columns=["file", "training", "seeds", "val_loss", "duration_s"])
    for column in ("val_loss", "duration_s"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame
