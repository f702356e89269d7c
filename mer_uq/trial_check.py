"""When a trial file may be trusted: the checks ``--resume`` and the report both apply.

A trial file is trusted only when (1) it is a regular file of the sweep folder itself, not
a symbolic link and not reached through a linked ``trials/`` (a link can point at another
sweep's results, and a resume would then write into that other sweep), and (2) its rows
are what the writer (mer_uq.trial) guarantees: every prediction column, finite means, a
finite sigma > 0 wherever the method has a spread of its own, and each (method, seed)
covering the same songs once each, as many as the trial record says it scored. A file
that fails is named with the first reason; nothing from it is used.

Which methods have a per-row spread is read from the registry (mer_uq.methods), so a new
method is checked without editing this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mer_uq import schema
from mer_uq.sweep_folder import (
    PLANNED_TRIALS_KEY,
    TRIAL_METADATA_KEY,
    TRIALS_DIR,
    TrialRecordKey,
    read_trial_file,
    training_of_stem,
)

if TYPE_CHECKING:
    import pandas as pd

# Splits a trial predicts (mer_uq.trial.EVAL_SPLITS), without importing torch.
PREDICTED_SPLITS: tuple[str, ...] = ("valid", "test")


def has_row_spread(method: str) -> bool | None:
    """Whether each prediction row of ``method`` carries its own sigma (None: a method the
    registry does not know). Only the random-seeds method gets its spread across seeds,
    after the fact; every other way of reading uncertainty gives one sigma per row."""
    from mer_uq.methods import METHODS, Uncertainty

    spec = METHODS.get(method)
    if spec is None:
        return None
    return spec.uncertainty is not Uncertainty.SEED_ENSEMBLE


def path_problem(sweep_dir: Path, path: Path) -> str | None:
    """Why ``path`` is not a trial file of ``sweep_dir`` itself, or None."""

    trials = Path(sweep_dir) / TRIALS_DIR
    if trials.is_symlink():
        return f"{TRIALS_DIR}/ is a symbolic link (to {os.readlink(trials)}), not this sweep's"
    if path.is_symlink():
        return f"a symbolic link (to {os.readlink(path)}), not a file of this sweep"
    if not path.is_file():
        return "not a regular file"
    if Path(os.path.realpath(path)).parent != Path(os.path.realpath(trials)):
        return "lies outside this sweep's folder"
    return None


def frame_problem(frame: pd.DataFrame, record: Mapping[str, Any] | None = None,
                  planned_songs: Mapping[str, np.ndarray] | None = None) -> str | None:
    """Why the predictions of one trial file break the writer's guarantees, or None.

    ``record``: the file's trial record; its seeds and per-split song counts must match the
    rows. ``planned_songs``: split -> the song ids the sweep's dataset plans there (known
    to the report, which loads the dataset); every (method, seed) must cover exactly them."""
    missing = [c for c in schema.PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        return f"missing columns {missing}"
    if frame.empty:
        return "no rows"
    clashing = _clashing_columns(list(frame.columns))
    if clashing:
        return f"duplicate columns {clashing}"
    bad_splits = sorted({str(s) for s in frame["split"]} - set(schema.SPLITS))
    if bad_splits:
        return f"unknown split values {bad_splits}"
    try:
        values = {c: frame[c].to_numpy(dtype=np.float64) for d in schema.DIMENSIONS
                  for c in (schema.PRED_MU[d], schema.PRED_SIGMA[d])}
    except (TypeError, ValueError):
        return "non-numeric predictions"
    mu_ok = np.all([np.isfinite(values[schema.PRED_MU[d]]) for d in schema.DIMENSIONS], axis=0)
    if not mu_ok.all():
        return f"non-finite predicted means in {int((~mu_ok).sum())} row(s)"
    problem = _sigma_problem(frame, values) or _coverage_problem(frame, record, planned_songs)
    return problem


def _clashing_columns(columns: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    clashes = []
    for name in columns:
        key = str(name).strip().lower()
        if key in seen:
            clashes.append(str(name))
        seen.setdefault(key, str(name))
    return clashes


def _sigma_problem(frame: pd.DataFrame, values: dict[str, np.ndarray]) -> str | None:
    methods = frame["method"].astype(str).to_numpy()
    for method in sorted(set(methods)):
        if not has_row_spread(method):
            continue
        rows = methods == method
        for d in schema.DIMENSIONS:
            sigma = values[schema.PRED_SIGMA[d]][rows]
            bad = ~(np.isfinite(sigma) & (sigma > 0))
            if bad.any():
                return (f"{method}: {schema.PRED_SIGMA[d]} is not a finite value > 0 in "
                        f"{int(bad.sum())} row(s)")
    return None


def _coverage_problem(frame: pd.DataFrame, record: Mapping[str, Any] | None,
                      planned_songs: Mapping[str, np.ndarray] | None) -> str | None:
    """Every (method, seed) predicts the same songs, once each, as the record and the plan
    say."""
    seeds = sorted(int(s) for s in frame["seed"].unique())
    recorded = record.get(TrialRecordKey.SEEDS) if record else None
    if isinstance(recorded, list) and sorted(int(s) for s in recorded) != seeds:
        return f"rows hold seeds {seeds}, its record says {sorted(recorded)}"
    keys = ["song_id", "split", "method", "seed"]
    if frame.duplicated(keys).any():
        return "a (song, split, method, seed) appears more than once"
    songs = record.get(TrialRecordKey.SONGS) if record else None
    counts = songs if isinstance(songs, dict) else {}
    reference: dict[str, set[int]] | None = None
    for (method, seed), group in frame.groupby(["method", "seed"], sort=True):
        songs = {split: set(group.loc[group["split"] == split, "song_id"].astype(int))
                 for split in PREDICTED_SPLITS}
        for split in PREDICTED_SPLITS:
            expected = counts.get(split)
            if isinstance(expected, int) and len(songs[split]) != expected:
                return (f"{method} seed {seed}: {len(songs[split])} {split} songs, its record "
                        f"says {expected}")
            if planned_songs is not None and split in planned_songs:
                planned = {int(s) for s in planned_songs[split]}
                lost = sorted(planned - songs[split])
                if lost:
                    return (f"{method} seed {seed}: lacks {len(lost)} planned {split} song(s), "
                            f"e.g. {lost[:3]}")
                extra = sorted(songs[split] - planned)
                if extra:
                    return (f"{method} seed {seed}: {len(extra)} {split} song(s) the sweep does "
                            f"not plan, e.g. {extra[:3]} (another dataset?)")
        if reference is None:
            reference = songs
        elif songs != reference:
            return f"{method} seed {seed} predicts other songs than the file's first method/seed"
    return None


def plan_problem(record: Mapping[str, Any], plan: Mapping[str, Any], stem: str,
                 row_seeds: list[int] | None = None) -> str | None:
    """Why a trial file is not a trial of the sweep ``plan`` (sweep.json), or None: its
    training and seeds (from its record, else ``row_seeds``, the seeds of its rows) must be
    planned (a file of another sweep, say one of 15 seeds in a sweep of 2, is not), and the
    model, training settings and MC passes its record names must be the sweep's. An empty
    ``plan`` (no sweep.json) checks nothing."""

    if not plan:
        return None
    record = record or {}
    training = record.get(TrialRecordKey.TRAINING, training_of_stem(stem))
    if training != training_of_stem(stem):
        return f"its record's training {training!r} is not the file name's"
    if training not in plan.get("trainings", []):
        return f"training {training!r} is not planned in sweep.json"
    planned_stems = plan.get(PLANNED_TRIALS_KEY)
    if planned_stems is not None and stem not in planned_stems:
        return "not a trial sweep.json plans"
    recorded = record.get(TrialRecordKey.SEEDS)
    seeds = recorded if isinstance(recorded, list) else row_seeds or []
    unplanned = sorted(set(seeds) - set(plan.get("seeds", [])))
    if unplanned:
        return f"seeds {unplanned[:5]} are not planned in sweep.json"
    settings = (TrialRecordKey.MODEL, TrialRecordKey.TRAIN, TrialRecordKey.MC_PASSES)
    differing = [k for k in settings if k in plan and k in record
                 and _comparable(record[k]) != _comparable(plan[k])]
    return f"its record differs from sweep.json in {', '.join(differing)}" if differing else None


def trial_file_problem(path: Path, expected: dict[str, Any]) -> str | None:
    """Why the trial file at ``path`` cannot count as finished, or None when it can.

    A finished trial is a regular file of the folder itself (path_problem) that
    reads back whole (every column of every row group, not only the footer), whose record
    matches the plan (each key of ``expected``: training, seeds, model, train, mc_passes)
    and whose rows pass the writer's guarantees (frame_problem). This
    is what ``--resume`` trusts; a truncated copy, a link, a file of another plan or of an
    older version is rerun instead."""
    import pyarrow as pa

    where = path_problem(Path(path).parent.parent, Path(path))
    if where is not None:
        return where
    try:
        frame, record = read_trial_file(path)
    except (OSError, ValueError, pa.ArrowException) as err:
        return f"unreadable ({str(err).splitlines()[0][:120]})"
    if not record:
        return f"no {TRIAL_METADATA_KEY.decode()} record"
    differing = [k for k, v in expected.items() if _comparable(record.get(k)) != _comparable(v)]
    if differing:
        return f"record differs from the plan in {', '.join(differing)}"
    return frame_problem(frame, record)


def _comparable(value: Any) -> Any:
    """JSON round trip, so tuples and lists (or ints and floats in JSON) compare equal."""
    return json.loads(json.dumps(value, default=str))
