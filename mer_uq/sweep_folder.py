"""The sweep folder on disk, the one contract between the sweep that writes it and the
analysis that reads it (docs/architecture.md):

    DIR/sweep.json                      what was asked for, written before any trial runs
    DIR/trials/<training>__<id>.parquet one file per finished trial (the seed sweep)
    DIR/search/                         Optuna search: its trials and best_config.json
    DIR/tune/                           Ray Tune's own experiment state and logs
    DIR/report/                         the analysis: tables, figures, report.md

Every name of that layout, the trial file's self-description and sweep.json's record are
spelled here only, so the writer and the reader cannot drift apart. sweep.json is both the
analysis's recipe (reload the same dataset and features) and the resume record:
``--resume DIR`` rebuilds the exact plan from it, so a resumed sweep cannot silently change
methods, seeds or hyperparameters halfway.

Every file is written atomically (``write_atomically``): a reader (another Ray worker, a
report run while the sweep still writes, a rerun after a crash) never sees half a file.
The data caches of mer_uq.data use the same writer.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer_uq import sweep_record

if TYPE_CHECKING:  # pyarrow and pandas load only when a trial file is touched
    import pandas as pd

SWEEP_JSON = "sweep.json"
TRIALS_DIR = "trials"
SEARCH_DIR = "search"
TUNE_DIR = "tune"
REPORT_DIR = "report"
BEST_CONFIG_JSON = "best_config.json"
TRIAL_SUFFIX = ".parquet"
# A trial file's stem is <training>__<trial-id>; the training key is the text before "__".
STEM_SEPARATOR = "__"
# Schema metadata key of a trial Parquet: the trial's JSON record (training key, seeds,
# configuration, metrics, the node that ran it), so one file read alone needs no other state.
TRIAL_METADATA_KEY = b"mer_uq.trial"
# sweep.json's key listing the planned trial file stems.
PLANNED_TRIALS_KEY = "trials"


class TrialRecordKey:
    """The keys of a trial file's record (its TRIAL_METADATA_KEY metadata): written by the
    sweep's trial (sweep.experiment), compared with the plan before a resume trusts the file
    (sweep.seed_sweep, mer_uq.trial_check) and read by the analysis
    (analysis.read.sweep_results)."""

    TRAINING = "training"  # the training key (mer_uq.methods.TRAININGS)
    SEEDS = "seeds"
    METHODS = "methods"  # the methods the trial's predictions serve
    TRIAL_ID = "trial_id"
    MODEL = "model"  # FCNConfig settings
    TRAIN = "train"  # TrainConfig settings
    MC_PASSES = "mc_passes"
    SONGS = "songs"  # split -> songs trained and scored on
    MC_SD_DDOF = "mc_sd_ddof"
    METRICS = "metrics"  # the trial's scalar metrics (val_loss among them)
    NODE = "node"  # host and IP of the node that ran it
    DURATION_S = "duration_s"
    DATA = "data"  # a data-axes cell (raters, train_fraction, subsample_seed); absent without
    FEATURE_SET = "feature_set"  # a feature-axis cell {label, features, feature_column}
    DISTRIBUTIONS = "distributions"  # a family beyond the Gaussian (mer_uq.families)


class BestConfigKey:
    """The keys of an Optuna search's best_config.json (BEST_CONFIG_JSON): written by
    sweep.search, read back by ``--config`` (sweep.study)."""

    METHOD = "method"
    TRAINING = "training"
    SEEDS = "seeds"
    OBJECTIVE = "objective"  # what was minimised, in words; its value under its own name
    MODEL = "model"  # the winning FCNConfig settings: what --config uses
    NUM_SAMPLES = "num_samples"
    TRIALS_FINISHED = "trials_finished"
    CREATED = "created"

# A sweep that writes into a folder holds this file (mer_uq.sweep_lock): its PID and host.
LOCK_FILE = ".sweep.lock"
# Keys sweep.json must hold (the contract with the analysis), plus the sweep's own; the
# whole schema (types, ranges, known keys) lives in mer_uq.sweep_record.
REQUIRED_KEYS = sweep_record.REQUIRED_KEYS


class SweepFolderError(ValueError):
    """A folder given as a sweep is not one, or disagrees with the request."""


# --- atomic writes ---------------------------------------------------------------------


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file in the target folder, then rename it over
    ``path``: os.replace is atomic only within one file system, hence the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text_atomically(path: Path, text: str) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomically(path: Path, data: bytes) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Atomic JSON write: a reader never sees half a record."""
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    return write_atomically(path, lambda tmp: tmp.write_text(text))


# --- names -----------------------------------------------------------------------------


def new_run_dir(root: Path = Path("runs")) -> Path:
    """A fresh ``runs/<UTC timestamp>`` folder name (not yet created)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    candidate = root / stamp
    n = 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{n}"
    return candidate


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def trial_stem(training: str, trial_id: str) -> str:
    """``<training>__<trial-id>``, a trial file's name without its suffix."""
    return f"{training}{STEM_SEPARATOR}{trial_id}"


def training_of_stem(stem: str) -> str:
    """The training key a trial file's stem encodes."""
    return stem.split(STEM_SEPARATOR, 1)[0]


def trial_file(trials_dir: Path, file_stem: str) -> Path:
    return trials_dir / f"{file_stem}{TRIAL_SUFFIX}"


def trial_files(trials_dir: Path) -> list[Path]:
    """The trial files of a folder, sorted (temporary files of a write are not trials)."""
    if not trials_dir.is_dir():
        return []
    return sorted(p for p in trials_dir.glob(f"*{TRIAL_SUFFIX}") if not p.name.startswith("."))


def finished_stems(trials_dir: Path) -> set[str]:
    """Stems of the trial files already written."""
    return {p.stem for p in trial_files(trials_dir)}


def looks_like_sweep(sweep_dir: Path) -> bool:
    """A sweep record or at least one trial file: something the analysis can read."""
    return (sweep_dir / SWEEP_JSON).is_file() or bool(trial_files(sweep_dir / TRIALS_DIR))


def refuse_contract_path(path: Path, flag: str) -> None:
    """SweepFolderError when writing ``path`` would replace a sweep folder's own files:
    its record, its lock, or anything under trials/, search/, tune/ or report/ (the report
    is replaced whole, so a file put there would vanish). Any other path is fine."""
    target = Path(os.path.abspath(path))
    for folder in target.parents:
        if not looks_like_sweep(folder):
            continue
        parts = target.relative_to(folder).parts
        if parts[0] in (SWEEP_JSON, LOCK_FILE, TRIALS_DIR, SEARCH_DIR, TUNE_DIR, REPORT_DIR):
            raise SweepFolderError(f"{flag} {path} would write over the sweep folder {folder}'s "
                                   f"own {parts[0]}; write it elsewhere")
    if target.is_dir():
        raise SweepFolderError(f"{flag} {path} is a folder; give a file name")


# --- sweep.json ------------------------------------------------------------------------


def write_sweep_json(sweep_dir: Path, record: dict[str, Any]) -> Path:
    """The record, checked by the schema every reader applies (so the writer cannot write
    what a resume would refuse), written atomically."""
    sweep_record.validate_sweep_record(json.loads(json.dumps(record)), sweep_dir / SWEEP_JSON)
    return write_json(sweep_dir / SWEEP_JSON, record)


def read_sweep_json(sweep_dir: Path) -> dict[str, Any]:
    """The record of an existing sweep, for ``--resume``: a clear error when the folder is
    not a sweep or the record lacks a required key."""
    path = Path(sweep_dir) / SWEEP_JSON
    if not Path(sweep_dir).is_dir():
        raise SweepFolderError(f"--resume {sweep_dir}: no such folder")
    if not path.is_file():
        raise SweepFolderError(
            f"--resume {sweep_dir} is not a sweep folder: it has no {SWEEP_JSON} "
            "(give the --out folder of an earlier `python -m sweep.run`)"
        )
    return _read_valid_record(path)


def read_sweep_record(path: Path) -> dict[str, Any]:
    """The sweep.json file at ``path``, checked, for ``--from``: a study repeated from its
    record alone (the folder around it is not needed)."""
    path = Path(path)
    if path.is_dir() and (path / SWEEP_JSON).is_file():
        raise SweepFolderError(f"--from {path} is a folder; give its record: --from "
                               f"{path / SWEEP_JSON}")
    if not path.is_file():
        raise SweepFolderError(f"--from {path}: no such file (give the {SWEEP_JSON} of an "
                               "earlier `python -m sweep.run`)")
    return _read_valid_record(path)


def _read_valid_record(path: Path) -> dict[str, Any]:
    """sweep.json parsed and checked by the one schema (mer_uq.sweep_record)."""
    if path.is_symlink():
        raise SweepFolderError(f"{path} is a symbolic link; a sweep record must be the "
                               "folder's own file")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SweepFolderError(f"{path} is not valid JSON: {err}") from err
    try:
        return sweep_record.validate_sweep_record(record, path)
    except sweep_record.SweepRecordError as err:
        raise SweepFolderError(str(err)) from err


def read_sweep_config(sweep_dir: Path) -> tuple[dict[str, Any], str | None]:
    """sweep.json as a dict for the analysis, or ({}, why not) when there is none: the
    trial files alone still give the tables (with the bundled default dataset). A record
    that exists but breaks the schema raises SweepFolderError: nothing is guessed."""
    path = Path(sweep_dir) / SWEEP_JSON
    if not path.exists() and not path.is_symlink():
        return {}, "missing: bundled dataset defaults assumed"
    return _read_valid_record(path), None


# --- trial files -----------------------------------------------------------------------


def write_trial_parquet(path: Path, predictions: pd.DataFrame, record: dict[str, Any]) -> Path:
    """Write predictions plus ``record`` in the schema metadata, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(predictions, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[TRIAL_METADATA_KEY] = json.dumps(record, default=str).encode()
    table = table.replace_schema_metadata(metadata)
    return write_atomically(path, lambda tmp: pq.write_table(table, tmp))


def read_trial_record(path: Path) -> dict[str, Any]:
    """The trial record of a trial file; ValueError when it has none."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    if TRIAL_METADATA_KEY not in metadata:
        raise ValueError(f"{path} has no {TRIAL_METADATA_KEY.decode()} metadata")
    return json.loads(metadata[TRIAL_METADATA_KEY])


def read_trial_file(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A whole trial file: its predictions and its record ({} without one, the raw text
    under ``unparsed`` when it is not JSON). Raises what Arrow raises for a broken file."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(TRIAL_METADATA_KEY)
    record: dict[str, Any] = {}
    if raw:
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            record = {"unparsed": raw.decode("utf-8", "replace")}
    return table.to_pandas(), record


def publish_trial_file(source: Path, target: Path) -> Path:
    """Copy a finished trial's file into the sweep folder atomically (never half a file,
    and a second copy of the same trial replaces the first instead of duplicating it)."""
    return write_atomically(target, lambda tmp: shutil.copyfile(source, tmp))
