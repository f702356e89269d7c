"""What every Tune experiment of the sweep shares, seed sweep and Optuna search alike: the
trials' constant config, the callbacks, the per-trial resources."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sweep.cli import SweepOptions
from sweep.progress import ProgressPrinter
from sweep.resources import TrialResources
from sweep.study import Study
from sweep.trainable import CRASH_ONCE_MARKER, MC_PASSES, MODEL, TRAIN

# Test hook (see sweep.trainable.CRASH_ONCE_MARKER): read by the driver, which then passes
# it to trials in their config (a worker does not see env set after Ray started).
CRASH_ONCE_ENV = "MER_UQ_TEST_CRASH_ONCE"


def base_config(study: Study) -> dict[str, Any]:
    """Tune config shared by every trial (logged to W&B as the run's config)."""
    config: dict[str, Any] = {MODEL: study.model, TRAIN: study.train, MC_PASSES: study.mc_passes}
    if os.environ.get(CRASH_ONCE_ENV):
        config[CRASH_ONCE_MARKER] = os.environ[CRASH_ONCE_ENV]
    return config


def trial_callbacks(
    options: SweepOptions, study: Study, total: int, label: str, sweep_dir: Path
) -> list[Any]:
    """Progress line always; one W&B run per trial with --wandb."""
    max_epochs = int(study.train.get("epochs", 1))
    callbacks: list[Any] = [ProgressPrinter(total=total, max_epochs=max_epochs, label=label)]
    if options.wandb:
        from sweep.wandb_logging import wandb_callback

        callbacks.append(wandb_callback(options.wandb_project, options.wandb_mode,
                                        group=f"{sweep_dir.name}-{label}", directory=sweep_dir))
    return callbacks


def trial_resources(options: SweepOptions) -> TrialResources:
    return TrialResources(cpus=options.cpus_per_trial, gpus=options.gpus_per_trial)


def experiment_name(sweep_dir: Path, label: str) -> str:
    """Unique per launch: a resumed sweep starts a new Tune experiment beside the old."""
    return f"{sweep_dir.name}-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
