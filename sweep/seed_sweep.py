"""The seed sweep: every pending (training key x seed chunk) trial on Ray Tune.

"Pending" is the resume rule: a trial whose file in DIR/trials reads back whole and matches
its plan is finished and never rerun (so results are never duplicated); any other file is
rerun, and the console says which and why.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from mer_uq.sweep_folder import (
    SWEEP_JSON,
    TRIALS_DIR,
    TrialRecordKey,
    finished_stems,
    trial_file,
    write_sweep_json,
)
from mer_uq.trial_check import trial_file_problem
from sweep.cli import SweepOptions
from sweep.folder_guards import tune_stops_cleanly
from sweep.inputs import load_inputs
from sweep.ray_runtime import (
    TrialResources,
    check_cluster,
    connect,
    disconnect,
    in_background,
)
from sweep.study import Study, TrialPlan, longest_first

# ======================================================================================
# The seed sweep: every pending (training key x seed chunk) trial on Ray Tune.
#
# "Pending" is the resume rule: a trial whose file in DIR/trials reads back whole and matches
# its plan is finished and never rerun (so results are never duplicated); any other file is
# rerun, and the console says which and why.
# ======================================================================================

# Imported while Ray starts (see run_seed_sweep), not before: Ray Tune, the
# driver's callbacks, and the integrations Tune imports when fit() starts (to tag which
# callbacks are in use; wandb alone ~1.3 s when installed) load while ray.init waits.
DRIVER_MODULES = (
    "ray.tune", "sweep.experiment",
    "ray.air.integrations.wandb", "ray.air.integrations.mlflow",
    "ray.air.integrations.comet", "ray.tune.logger.aim",
)  # fmt: skip
# The report's modules (pandas, scipy, matplotlib: about a second; no torch), imported
# while Ray shuts down.
REPORT_MODULES = ("analysis.report",)


def _pending(plans: list[TrialPlan], study: Study, trials_dir: Path) -> list[TrialPlan]:
    """The plans without a trustworthy file; each distrusted file is named on the console."""
    present = finished_stems(trials_dir)
    pending = []
    for plan in plans:
        if plan.file_stem in present:
            config = plan.to_config()  # a data-axes or feature-axis cell, or neither
            key = TrialRecordKey
            expected = {key.TRAINING: plan.training, key.SEEDS: list(plan.seeds),
                       key.MODEL: study.model, key.TRAIN: study.train,
                       key.MC_PASSES: study.mc_passes, key.DATA: config.get(key.DATA),
                       key.FEATURE_SET: config.get(key.FEATURE_SET)}
            problem = trial_file_problem(trial_file(trials_dir, plan.file_stem), expected)
            if problem is None:
                continue
            print(f"[sweep] {trial_file(trials_dir, plan.file_stem)}: {problem}; rerunning "
                  "that trial", flush=True)
        pending.append(plan)
    return pending


def _inputs_and_modules(study: Study) -> tuple[Any, Any]:
    """The study's data (checked first: bad input fails before anything else), then the
    modules the driver needs once Ray is up."""
    inputs = load_inputs(study)
    _import_all(DRIVER_MODULES)
    return inputs


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


def run_seed_sweep(options: SweepOptions, study: Study, sweep_dir: Path, resuming: bool,
                   resources: TrialResources) -> int:
    """Train every pending trial; returns the number of trials without a result file, plus
    one when the report failed (either makes the exit code 1).

    Its steps: find the pending trials, load the data (while Ray starts, when there are
    trials to run), record the study, run the pending trials, name the missing ones, write
    the report."""
    trials_dir = sweep_dir / TRIALS_DIR
    plans = study.trials()
    pending = _pending(plans, study, trials_dir)
    connection, (dataset, features) = _connect_and_load(options, study, bool(pending))
    if not resuming:
        write_sweep_json(sweep_dir, study.to_record())
    print(
        f"[sweep] {sweep_dir}: methods {', '.join(study.methods)}; {len(study.seeds)} seeds; "
        f"{len(plans)} trials ({len(plans) - len(pending)} already finished)",
        flush=True,
    )
    if connection is not None:
        try:
            _run_trials(options, study, sweep_dir, resources, pending, (dataset, features))
        finally:
            with in_background(lambda: _import_all(REPORT_MODULES if options.report else ())):
                disconnect(connection)
    missing = [p.file_stem for p in plans if not trial_file(trials_dir, p.file_stem).exists()]
    if missing:
        print(f"[sweep] {len(missing)} trial(s) failed after retries: {', '.join(missing)}; "
              f"rerun with --resume {sweep_dir}", file=sys.stderr)
    report_failed = options.report and not write_final_report(sweep_dir)
    print(f"[sweep] results: {trials_dir}/ (one Parquet per trial), sweep record: "
          f"{sweep_dir / SWEEP_JSON}", flush=True)
    return len(missing) + int(report_failed)


def _connect_and_load(options: SweepOptions, study: Study, trials_to_run: bool
                      ) -> tuple[Any, tuple[Any, Any]]:
    """(Ray connection or None, (dataset, features)). With trials to run, the data loads
    while Ray starts (sweep.ray_runtime.in_background); bad data then stops that Ray again
    and fails as before, with no sweep.json written. Without, Ray is never started."""
    if not trials_to_run:
        return None, load_inputs(study)
    with in_background(lambda: _inputs_and_modules(study)) as loading:
        connection = connect(options.address)
    try:
        return connection, loading.result()
    except BaseException:
        disconnect(connection)
        raise


def _run_trials(options: SweepOptions, study: Study, sweep_dir: Path, resources: TrialResources,
                pending: list[TrialPlan], inputs: tuple[Any, Any]) -> None:
    """The pending trials as one Ray Tune grid, longest first; each finished trial's file is
    published into DIR/trials as it completes."""
    from ray import tune

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

    check_cluster(resources, options.address)
    with tune_stops_cleanly():
        run_experiment(
            make_trainable(*inputs, resources),
            {**base_config(study),
             PLAN: tune.grid_search([p.to_config() for p in longest_first(pending)])},
            storage_path=default_storage(sweep_dir, options.storage_path),
            name=experiment_name(sweep_dir, "sweep"),
            max_concurrent=options.max_concurrent,
            max_failures=options.max_failures,
            callbacks=[
                TrialPublisher(sweep_dir / TRIALS_DIR),
                *trial_callbacks(options, study, len(pending), "sweep", sweep_dir),
            ],
        )


# ======================================================================================
# The end of a sweep: the analysis report, with Table 2 and Table 3 on the console.
#
# The tables printed are the ones the report wrote (write_report returns them, the same
# Markdown as DIR/report/tables/table{2,3}.md), so the console and the report can never
# disagree. A report that fails loses nothing: the trial files stay, and the one line
# printed says how to rebuild the report from them.
# ======================================================================================

def write_final_report(sweep_dir: Path) -> bool:
    """analysis.report.write_report(DIR) and its two tables on the console; False (and one
    line on stderr) when the report fails."""
    try:
        from analysis.report import write_report

        written = write_report(sweep_dir)
    except Exception as err:  # the trials are safe on disk: say how to retry, never lose them
        print(f"[sweep] report failed ({type(err).__name__}: {err}); the trial files are "
              f"kept: rebuild it with python -m analysis.report {sweep_dir}", file=sys.stderr)
        return False
    for title, table in written.console_tables:
        print(f"\n{title}\n{table}", flush=True)
    print(f"[sweep] report: {written.markdown}", flush=True)
    return True
