"""Build and run one Ray Tune experiment; shared by the seed sweep and the Optuna search.

The settings here are the ones measured to matter on small trials: ``reuse_actors=True``
(a fresh trial actor costs 3-7 s), the data passed once through the object store
(``tune.with_parameters``), Ray's own console tables off (our ProgressPrinter instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from sweep.ray_runtime import secrets_withheld
from sweep.resources import TrialResources
from sweep.trainable import PLAN, train_trial


def make_trainable(dataset: Any, features: Any, resources: TrialResources) -> Any:
    """The trial function bound to the data (one object-store copy) and its resources."""
    resources.validate()
    bound = tune.with_parameters(train_trial, dataset=dataset, features=features)
    return tune.with_resources(bound, resources.as_tune())


def _trial_name(trial: Any) -> str:
    return f"{trial.config[PLAN]['file_stem']}_{trial.trial_id}"


def run_experiment(
    trainable: Any,
    param_space: dict[str, Any],
    *,
    storage_path: str,
    name: str,
    max_concurrent: int | None,
    max_failures: int,
    callbacks: list[Any],
    search_alg: Any = None,
    num_samples: int = 1,
    metric: str | None = None,
    mode: str | None = None,
) -> tune.ResultGrid:
    """Run the experiment to the end; trial errors are left in the ResultGrid."""
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            metric=metric,
            mode=mode,
            num_samples=num_samples,
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            # Tune's automatic loggers are off (sweep.ray_runtime: TensorBoardX would load
            # torch in the driver); its per-trial progress.csv and result.json stay.
            callbacks=[*callbacks, CSVLoggerCallback(), JsonLoggerCallback()],
            verbose=0,
        ),
    )
    with secrets_withheld():
        return tuner.fit()


def default_storage(sweep_dir: Path, storage_path: str | None) -> str:
    """Where Tune keeps its state: the user's (shared) storage, else DIR/tune."""
    if storage_path:
        return storage_path if "://" in storage_path else str(Path(storage_path).resolve())
    return str((sweep_dir / "tune").resolve())
