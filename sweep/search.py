"""Optuna search over the FCN's dropout and hidden width, for one method's model.

Optuna proposes, Ray Tune runs the trials in parallel. The objective is the VALIDATION loss
that run_trial reports (best epoch, mean over the trial's seeds); the test split is never
looked at, so the seed sweep that later uses the best configuration still reports an
honest test score. OptunaSearch cannot take ``tune.grid_search``, which is why search and
seed sweep are two runs: search here, then ``--config DIR/search/best_config.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search.optuna import OptunaSearch

from mer_uq.sweep_folder import (
    BEST_CONFIG_JSON,
    SEARCH_DIR,
    TRIALS_DIR,
    BestConfigKey,
    SweepFolderError,
    now_iso,
    trial_stem,
    write_json,
)
from sweep.cli import SweepOptions
from sweep.experiment import (
    PLAN,
    TrialPublisher,
    base_config,
    default_storage,
    experiment_name,
    make_trainable,
    run_experiment,
    trial_callbacks,
)
from sweep.inputs import load_inputs
from sweep.ray_runtime import TrialResources, check_cluster, connect, disconnect
from sweep.study import Study, TrialPlan, plan_trials, resolve_methods

OBJECTIVE = "val_loss"
SEARCH_SPACE: dict[str, Any] = {
    "dropout": tune.uniform(0.1, 0.7),
    "hidden_width": tune.randint(64, 513),  # upper bound exclusive: 64..512
}


def search_plan(study: Study, method: str) -> TrialPlan:
    """The one model the search tunes: ``method``'s training key with all study seeds."""
    (plan,) = plan_trials(resolve_methods(method), study.seeds, None)
    return plan


def search_trial_stem(trial: Any) -> str:
    """``<training>__search-<tune trial id>``: many search trials share one plan."""
    return trial_stem(trial.config[PLAN]["training"], f"search-{trial.trial_id}")


def searcher(seed: int = 0) -> OptunaSearch:
    return OptunaSearch(metric=OBJECTIVE, mode="min", seed=seed)


def search_publisher(sweep_dir: Path) -> TrialPublisher:
    return TrialPublisher(sweep_dir / SEARCH_DIR / TRIALS_DIR, name_of=search_trial_stem)


def write_best_config(
    sweep_dir: Path, results: tune.ResultGrid, plan: TrialPlan, method: str, num_samples: int
) -> Path:
    """best_config.json: the winning hyperparameters, in the form ``--config`` reads."""
    best = results.get_best_result(metric=OBJECTIVE, mode="min", scope="last")
    if best.metrics is None or OBJECTIVE not in best.metrics:
        raise RuntimeError("no search trial finished; nothing to choose from")
    key = BestConfigKey
    record = {
        key.METHOD: method,
        key.TRAINING: plan.training,
        key.SEEDS: list(plan.seeds),
        key.OBJECTIVE: f"{OBJECTIVE} (validation split, lower is better)",
        OBJECTIVE: float(best.metrics[OBJECTIVE]),
        key.MODEL: {
            "dropout": float(best.config["dropout"]),
            "hidden_width": int(best.config["hidden_width"]),
        },
        key.NUM_SAMPLES: num_samples,
        key.TRIALS_FINISHED: sum(1 for r in results if r.error is None),
        key.CREATED: now_iso(),
    }
    return write_json(sweep_dir / SEARCH_DIR / BEST_CONFIG_JSON, record)


def default_concurrency(resources: TrialResources) -> int:
    """OptunaSearch must always be given a concurrency bound: CPUs / CPUs per trial."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, int(cpus // resources.cpus))


def run_search(options: SweepOptions, study: Study, sweep_dir: Path,
               resources: TrialResources) -> int:
    """Optuna over dropout and width; writes DIR/search/best_config.json."""
    if options.resume is not None:
        raise SweepFolderError("--resume continues seed sweeps; start a new --search run")
    dataset, features = load_inputs(study)
    plan = search_plan(study, options.search_method)
    print(f"[search] {sweep_dir}: Optuna, {options.num_samples} trials of {plan.training} "
          f"({len(plan.seeds)} seeds each), objective {OBJECTIVE}", flush=True)
    connection = connect(options.address)
    try:
        check_cluster(resources, options.address)
        results = run_experiment(
            make_trainable(dataset, features, resources),
            {**base_config(study), PLAN: plan.to_config(), **SEARCH_SPACE},
            storage_path=default_storage(sweep_dir / SEARCH_DIR, options.storage_path),
            name=experiment_name(sweep_dir, "search"),
            max_concurrent=options.max_concurrent or default_concurrency(resources),
            max_failures=options.max_failures,
            callbacks=[
                search_publisher(sweep_dir),
                *trial_callbacks(options, study, options.num_samples, "search", sweep_dir),
            ],
            search_alg=searcher(),
            num_samples=options.num_samples,
            metric=OBJECTIVE,
            mode="min",
        )
    finally:
        disconnect(connection)
    best = write_best_config(sweep_dir, results, plan, options.search_method,
                             options.num_samples)
    print(f"[search] best configuration: {best}\n[search] use it: python -m sweep.run "
          f"--config {best}", flush=True)
    return 0
