"""The sweep folder on disk, as docs/architecture.md fixes it.

    DIR/sweep.json                      what was asked for, written before any trial runs
    DIR/trials/<training>__<id>.parquet one file per finished trial (the seed sweep)
    DIR/search/                         Optuna search: its trials and best_config.json
    DIR/tune/                           Ray Tune's own experiment state and logs

sweep.json is both the analysis's recipe (reload the same dataset and features) and the
resume record: ``--resume DIR`` rebuilds the exact plan from it, so a resumed sweep cannot
silently change methods, seeds or hyperparameters halfway.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mer_uq.data.atomic import write_atomically

SWEEP_JSON = "sweep.json"
TRIALS_DIR = "trials"
SEARCH_DIR = "search"
TUNE_DIR = "tune"
BEST_CONFIG_JSON = "best_config.json"
TRIAL_SUFFIX = ".parquet"

# Keys sweep.json must hold (the contract with the analysis), plus the sweep's own.
REQUIRED_KEYS: tuple[str, ...] = (
    "deam_dir", "split_file", "fix_swap", "include_2015", "features", "feature_column",
    "methods", "trainings", "seeds", "model", "train", "mc_passes", "created",
)  # fmt: skip


class SweepFolderError(ValueError):
    """A folder given as a sweep is not one, or disagrees with the request."""


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


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Atomic JSON write: a reader never sees half a record."""
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    return write_atomically(path, lambda tmp: tmp.write_text(text))


def write_sweep_json(sweep_dir: Path, record: dict[str, Any]) -> Path:
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"sweep.json record lacks {missing}")
    return write_json(sweep_dir / SWEEP_JSON, record)


def read_sweep_json(sweep_dir: Path) -> dict[str, Any]:
    """The record of an existing sweep; a clear error when the folder is not a sweep."""
    path = Path(sweep_dir) / SWEEP_JSON
    if not Path(sweep_dir).is_dir():
        raise SweepFolderError(f"--resume {sweep_dir}: no such folder")
    if not path.is_file():
        raise SweepFolderError(
            f"--resume {sweep_dir} is not a sweep folder: it has no {SWEEP_JSON} "
            "(give the --out folder of an earlier `python -m sweep.run`)"
        )
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SweepFolderError(f"{path} is not valid JSON: {err}") from err
    missing = [k for k in REQUIRED_KEYS if k not in record] if isinstance(record, dict) else []
    if not isinstance(record, dict) or missing:
        raise SweepFolderError(f"{path} is not a sweep record (missing {missing or 'all keys'})")
    return record


def trial_file(trials_dir: Path, file_stem: str) -> Path:
    return trials_dir / f"{file_stem}{TRIAL_SUFFIX}"


def finished_stems(trials_dir: Path) -> set[str]:
    """Stems of the trial files already written (temporary files are ignored)."""
    if not trials_dir.is_dir():
        return set()
    return {p.stem for p in trials_dir.glob(f"*{TRIAL_SUFFIX}") if not p.name.startswith(".")}
