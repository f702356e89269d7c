"""Driver-side: publish each finished trial's predictions into DIR/trials the moment the
trial completes.

Trials hand their Parquet back as a Tune checkpoint (see sweep.trainable); this callback
copies it to ``DIR/trials/<training>__<trial-id>.parquet`` atomically. Publishing per trial,
not after ``Tuner.fit`` returns, is what makes an interrupted driver lose nothing that had
finished; naming the file after the trial's seeds, not Tune's trial name, is what stops a
retried or resumed trial from ever producing a second copy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from mer_uq.sweep_folder import publish_trial_file, trial_file
from sweep.trainable import PLAN, PREDICTIONS_FILE


def plan_file_stem(trial: Any) -> str:
    """Seed-sweep trials: the plan's ``<training>__<seeds>``, stable across reruns."""
    return trial.config[PLAN]["file_stem"]


class TrialPublisher(Callback):
    """Copies each completed trial's predictions into ``trials_dir`` as ``name_of(trial)``."""

    def __init__(self, trials_dir: Path, name_of: Callable[[Any], str] = plan_file_stem) -> None:
        self.trials_dir = Path(trials_dir)
        self.name_of = name_of

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        checkpoint = trial.checkpoint
        if checkpoint is None:
            raise RuntimeError(f"trial {trial} completed without its predictions checkpoint")
        target = trial_file(self.trials_dir, self.name_of(trial))
        with checkpoint.as_directory() as folder:
            publish_trial_file(Path(folder) / PREDICTIONS_FILE, target)
