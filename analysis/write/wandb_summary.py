"""Log the report's tables and figures to one W&B summary run.

Offline by default: a sweep on a cluster without credentials must still finish, and
`wandb sync` can upload the run later. wandb is imported here only, lazily, so the
analysis works without the optional dependency when --wandb is not asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # no pandas at import: sweep.cli reads the modes below in its fast path
    import pandas as pd

# The W&B settings the sweep's and the report's flags share (one spelling for both CLIs).
DEFAULT_PROJECT = "mer-uq"
WANDB_MODES: tuple[str, ...] = ("offline", "online", "disabled")
DEFAULT_MODE = "offline"


def _table_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """W&B tables want plain str/float/int/bool cells."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: "" if v is None else str(v))
    return out


def log_summary(run_dir: Path, tables: dict[str, pd.DataFrame], figures: dict[str, Path],
                config: dict[str, Any], *, mode: str = DEFAULT_MODE,
                project: str = DEFAULT_PROJECT, name: str | None = None) -> Path:
    """One run holding every table (wandb.Table) and figure (wandb.Image); returns the
    run's local directory (under WANDB_DIR when set, else ``run_dir``)."""
    if mode not in WANDB_MODES:
        raise ValueError(f"wandb mode must be one of {WANDB_MODES}, got {mode!r}")
    import wandb

    wandb_dir = Path(os.environ.get("WANDB_DIR", run_dir))
    wandb_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, name=name, mode=mode, dir=str(wandb_dir),
                     job_type="report", config=config, reinit="create_new")
    try:
        payload: dict[str, Any] = {
            f"tables/{key}": wandb.Table(dataframe=_table_frame(frame))
            for key, frame in tables.items() if len(frame)
        }
        payload.update({f"figures/{key}": wandb.Image(str(path)) for key, path in figures.items()})
        run.log(payload)
        local_dir = Path(run.dir).parent
    finally:
        run.finish()
    return local_dir
