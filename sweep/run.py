"""``python -m sweep.run``: the study (methods x seeds) or an Optuna search, on Ray Tune.

Order of work, and why:
1. resolve the study (or reload it from sweep.json on --resume) and load dataset and
   features ONCE in the driver, checking them before any Ray start: bad input fails in a
   second with one clear message;
2. write DIR/sweep.json before any trial runs, so an interrupted sweep is resumable and
   the analysis knows what was asked even if nothing finished;
3. run only the trials whose file is not yet in DIR/trials (the resume rule: finished
   trials are never rerun, so never duplicated);
4. print the tables (the analysis report, or a fallback) and where everything is.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray import tune

from mer_uq.data.errors import DeamDataError
from sweep.cli import SweepOptions, parse_options
from sweep.collector import TrialPublisher
from sweep.folder import (
    SEARCH_DIR,
    TRIALS_DIR,
    SweepFolderError,
    finished_stems,
    new_run_dir,
    read_sweep_json,
    trial_file,
    write_sweep_json,
)
from sweep.grid import PlanError
from sweep.inputs import FeatureCoverageError, load_inputs
from sweep.progress import ProgressPrinter
from sweep.ray_runtime import RayConnectionError, check_address, connect, disconnect
from sweep.study import Study, StudyConfigError, study_from_options
from sweep.trainable import CRASH_ONCE_MARKER, MC_PASSES, MODEL, PLAN, TRAIN
from sweep.tuning import (
    ResourceError,
    TrialResources,
    default_storage,
    make_trainable,
    run_experiment,
)

# Errors that mean "the request is wrong": one line, exit code 2, no traceback.
USER_ERRORS = (
    PlanError,
    SweepFolderError,
    StudyConfigError,
    FeatureCoverageError,
    DeamDataError,
    RayConnectionError,
    ResourceError,
)
# Test hook (see sweep.trainable.CRASH_ONCE_MARKER): read by the driver, which then passes
# it to trials in their config (a worker does not see env set after Ray started).
CRASH_ONCE_ENV = "MER_UQ_TEST_CRASH_ONCE"


def base_config(study: Study) -> dict[str, Any]:
    """Tune config shared by every trial (logged to W&B as the run's config)."""
    config: dict[str, Any] = {MODEL: study.model, TRAIN: study.train, MC_PASSES: study.mc_passes}
    if os.environ.get(CRASH_ONCE_ENV):
        config[CRASH_ONCE_MARKER] = os.environ[CRASH_ONCE_ENV]
    return config


def _callbacks(
    options: SweepOptions, total: int, max_epochs: int, label: str, sweep_dir: Path
) -> list[Any]:
    callbacks: list[Any] = [ProgressPrinter(total=total, max_epochs=max_epochs, label=label)]
    if options.wandb:
        from sweep.wandb_logging import wandb_callback

        callbacks.append(wandb_callback(options.wandb_project, options.wandb_mode,
                                        group=f"{sweep_dir.name}-{label}", directory=sweep_dir))
    return callbacks


def _resolve(options: SweepOptions) -> tuple[Study, Path, bool]:
    """(study, sweep folder, resuming?)."""
    if options.resume is not None:
        return Study.from_record(read_sweep_json(options.resume)), Path(options.resume), True
    sweep_dir = Path(options.out) if options.out is not None else new_run_dir()
    if (sweep_dir / TRIALS_DIR).exists() and any((sweep_dir / TRIALS_DIR).iterdir()):
        raise SweepFolderError(
            f"--out {sweep_dir} already holds trial results; use --resume {sweep_dir} to "
            "continue that sweep, or choose a new --out"
        )
    return study_from_options(options), sweep_dir, False


def run_seed_sweep(options: SweepOptions, study: Study, sweep_dir: Path, resuming: bool) -> int:
    """Train every pending trial; returns the number of trials without a result file."""
    dataset, features = load_inputs(study)
    if not resuming:
        write_sweep_json(sweep_dir, study.to_record())
    trials_dir = sweep_dir / TRIALS_DIR
    plans = study.trials()
    done = finished_stems(trials_dir)
    pending = [p for p in plans if p.file_stem not in done]
    print(
        f"[sweep] {sweep_dir}: methods {', '.join(study.methods)}; {len(study.seeds)} seeds; "
        f"{len(plans)} trials ({len(plans) - len(pending)} already finished)",
        flush=True,
    )
    if pending:
        connection = connect(options.address)
        try:
            run_experiment(
                make_trainable(dataset, features, _resources(options)),
                {**base_config(study), PLAN: tune.grid_search([p.to_config() for p in pending])},
                storage_path=default_storage(sweep_dir, options.storage_path),
                name=f"{sweep_dir.name}-sweep-{time.strftime('%Y%m%d-%H%M%S')}",
                max_concurrent=options.max_concurrent,
                max_failures=options.max_failures,
                callbacks=[
                    TrialPublisher(trials_dir),
                    *_callbacks(options, len(pending), study.train.get("epochs", 1), "sweep",
                                sweep_dir),
                ],
            )
        finally:
            disconnect(connection)
    missing = [p.file_stem for p in plans if not trial_file(trials_dir, p.file_stem).exists()]
    if missing:
        print(f"[sweep] {len(missing)} trial(s) failed after retries: {', '.join(missing)}; "
              f"rerun with --resume {sweep_dir}", file=sys.stderr)
    if options.report:
        _report(sweep_dir, dataset.songs)
    print(f"[sweep] results: {trials_dir}/ (one Parquet per trial), sweep record: "
          f"{sweep_dir / 'sweep.json'}", flush=True)
    return len(missing)


def _resources(options: SweepOptions) -> TrialResources:
    return TrialResources(cpus=options.cpus_per_trial, gpus=options.gpus_per_trial)


def _print_report_tables(report_dir: Path) -> None:
    """Show the report's Table 2 and Table 3 on the console: the headline of the run."""
    for stem, title in (("table2", "Table 2: predicted vs empirical MEAN (test split)"),
                        ("table3", "Table 3: predicted vs empirical SD (test split)")):
        table = report_dir / "tables" / f"{stem}.md"
        if table.is_file():
            print(f"\n{title}\n{table.read_text()}", flush=True)


def _report(sweep_dir: Path, songs: Any) -> None:
    """The analysis report when it is available; else the tables printed from the files."""
    try:
        from analysis.report import write_report

        report = write_report(sweep_dir)
        _print_report_tables(Path(report).parent)
        print(f"[sweep] report: {report}", flush=True)
        return
    except Exception as err:  # the analysis is optional here: never lose the tables
        print(f"[sweep] analysis report unavailable ({type(err).__name__}: {err}); "
              "printing the tables from the trial files", file=sys.stderr)
    from sweep.summary import print_paper_tables

    print_paper_tables(sweep_dir / TRIALS_DIR, songs)


def run_optuna_search(options: SweepOptions, study: Study, sweep_dir: Path) -> int:
    """Optuna over dropout and width; writes DIR/search/best_config.json."""
    from sweep.search import (
        OBJECTIVE,
        SEARCH_SPACE,
        search_plan,
        search_publisher,
        searcher,
        write_best_config,
    )

    if options.resume is not None:
        raise SweepFolderError("--resume continues seed sweeps; start a new --search run")
    dataset, features = load_inputs(study)
    plan = search_plan(study, options.search_method)
    print(f"[search] {sweep_dir}: Optuna, {options.num_samples} trials of {plan.training} "
          f"({len(plan.seeds)} seeds each), objective {OBJECTIVE}", flush=True)
    connection = connect(options.address)
    try:
        results = run_experiment(
            make_trainable(dataset, features, _resources(options)),
            {**base_config(study), PLAN: plan.to_config(), **SEARCH_SPACE},
            storage_path=default_storage(sweep_dir / SEARCH_DIR, options.storage_path),
            name=f"{sweep_dir.name}-search-{time.strftime('%Y%m%d-%H%M%S')}",
            max_concurrent=options.max_concurrent or _default_concurrency(options),
            max_failures=options.max_failures,
            callbacks=[
                search_publisher(sweep_dir),
                *_callbacks(options, options.num_samples, study.train.get("epochs", 1),
                            "search", sweep_dir),
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


def _default_concurrency(options: SweepOptions) -> int:
    """OptunaSearch must always be given a concurrency bound: CPUs / CPUs per trial."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, int(cpus // options.cpus_per_trial))


def run(options: SweepOptions) -> int:
    """Run what the options ask for; the process exit code."""
    # Cheap checks first: nothing is loaded, written or started for a bad request.
    check_address(options.address)
    _resources(options).validate()
    study, sweep_dir, resuming = _resolve(options)
    if options.search == "optuna":
        return run_optuna_search(options, study, sweep_dir)
    return 1 if run_seed_sweep(options, study, sweep_dir, resuming) else 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(parse_options(argv))
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
