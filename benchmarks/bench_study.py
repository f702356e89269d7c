"""Where the default study's time goes: each phase timed on its own, then the whole command.

    python benchmarks/bench_study.py                     # paper methods x 15 seeds (~6 min)
    python benchmarks/bench_study.py --seeds 3 --epochs 5   # a quick look
    python benchmarks/bench_study.py --repo /path/to/other/checkout   # the same, of that code

Phases, each measured where it happens:

* driver start + imports: a fresh interpreter importing what ``python -m sweep.run``
  imports before Ray starts (median of 3);
* data loading: DEAM and the features, as the driver loads them;
* Ray start / Ray stop: ``sweep.ray_runtime.connect`` and ``disconnect`` of a local instance;
* trial actor start: from asking Ray for an actor with Tune's runtime env to the actor
  having imported the trial code (what every slot pays once per launch; slots start
  together);
* data shipping: the dataset and features into the object store (``ray.put``) and out of
  it in a worker (``ray.get``);
* training, and MC dropout + prediction + scoring: ``mer_uq.trial.run_trial`` per trial,
  in this process on one thread (process CPU time: other processes do not inflate it);
* publishing: a trial's Parquet written and published into trials/;
* report: ``python -m analysis.report`` on the finished sweep (fresh process).

Then the user's view: ``python -m sweep.run ... --no-report`` as a fresh process, the
report on its folder, and the plain loop of the same trials at the same parallelism
(benchmarks/bench_sweep.py's ProcessPoolExecutor baseline); sweep and plain loop
alternate with --repeats.

The share column is each phase's part of a modelled wall time: the start-up and stop
phases one after another, the trial phases spread over the slots (sum / slots), the
report after. The measured end-to-end numbers follow it, so the two can be compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _repo_from_argv() -> Path:
    """--repo is needed before the project's modules are imported, so it is read here."""
    if "--repo" in sys.argv:
        return Path(sys.argv[sys.argv.index("--repo") + 1]).resolve()
    return Path(__file__).resolve().parents[1]


REPO = _repo_from_argv()
sys.path.insert(0, str(REPO))
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
BENCH_SWEEP = REPO / "benchmarks" / "bench_sweep.py"  # the plain loop of that code

# What `python -m sweep.run` imports before it starts Ray (the seed sweep's driver).
DRIVER_IMPORTS = "import sweep.run, sweep.study, sweep.seed_sweep, sweep.inputs"
# What a Tune trial actor imports before its first epoch.
TRIAL_IMPORTS = ("ray.tune", "sweep.experiment", "mer_uq.trial")
# The runtime env Ray Tune gives its trial actors (ray/tune/execution/class_cache.py), so
# that the timed actor gets a fresh worker as Tune's do.
TUNE_ACTOR_ENV = {"env_vars": {"PL_DISABLE_FORK": "1"}}


def _wall(argv: list[str], repeats: int = 1) -> float:
    """Median wall time of a fresh process."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return statistics.median(times)


def _cli_args(args: argparse.Namespace) -> list[str]:
    cli = ["--methods", args.methods, "--seeds", args.seeds,
           "--max-concurrent", str(args.parallel), "--cpus-per-trial", "1"]
    return cli + (["--epochs", args.epochs] if args.epochs else [])


# ---------------------------------------------------------------- the phases


def ray_phases(study: Any, dataset: Any, features: Any) -> dict[str, float]:
    """Ray start, trial actor start, data shipping, Ray stop (one local instance)."""
    from sweep.ray_runtime import connect, disconnect

    started = time.perf_counter()
    connection = connect(None)
    phases = {"Ray start": time.perf_counter() - started}
    import ray

    @ray.remote(num_cpus=1, runtime_env=TUNE_ACTOR_ENV)
    class TrialActor:
        def ready(self, modules: tuple[str, ...]) -> float:
            import importlib

            begun = time.perf_counter()
            for name in modules:
                importlib.import_module(name)
            return time.perf_counter() - begun

        def fetch(self, refs: list[Any]) -> float:
            begun = time.perf_counter()
            ray.get(refs)
            return time.perf_counter() - begun

    started = time.perf_counter()
    actor = TrialActor.remote()
    ray.get(actor.ready.remote(TRIAL_IMPORTS))
    phases["trial actor start + imports"] = time.perf_counter() - started
    started = time.perf_counter()
    refs = [ray.put(dataset), ray.put(features)]
    put = time.perf_counter() - started
    phases["data shipping (put + get)"] = put + ray.get(actor.fetch.remote(refs))
    ray.kill(actor)
    started = time.perf_counter()
    disconnect(connection)
    phases["Ray stop"] = time.perf_counter() - started
    return phases


def trial_phases(study: Any, dataset: Any, features: Any) -> list[dict[str, Any]]:
    """Each planned trial run in this process: training vs the rest of run_trial (MC
    dropout, prediction, scoring), then publishing its file."""
    import mer_uq.trial as trial_module

    try:  # this layout (issue 9 regrouped sweep/)
        from mer_uq.sweep_folder import publish_trial_file, write_trial_parquet
        from sweep.experiment import MC_PASSES, MODEL, PLAN, TRAIN, build_spec
        from sweep.study import plan_trials
    except ImportError:  # --repo of a checkout from before the regroup
        from sweep.grid import plan_trials
        from sweep.trainable import MC_PASSES, MODEL, PLAN, TRAIN, build_spec
        from sweep.trial_files import publish_trial_file, write_trial_parquet

    train_stack = trial_module.train_stack
    spent: dict[str, float] = {}

    def timed_train_stack(*a: Any, **k: Any) -> Any:
        begun = time.process_time()
        out = train_stack(*a, **k)
        spent["training"] = time.process_time() - begun
        return out

    trial_module.train_stack = timed_train_stack
    rows = []
    try:
        for plan in plan_trials(study.methods, study.seeds, study.seeds_per_trial):
            spec = build_spec({PLAN: plan.to_config(), MODEL: study.model, TRAIN: study.train,
                               MC_PASSES: study.mc_passes})
            begun = time.process_time()
            result = trial_module.run_trial(spec, dataset, features)
            total = time.process_time() - begun
            with tempfile.TemporaryDirectory(prefix="bench_study_") as tmp:
                begun = time.perf_counter()
                written = Path(tmp) / "predictions.parquet"
                write_trial_parquet(written, result.predictions, {"trial_id": plan.trial_id})
                (Path(tmp) / "trials").mkdir()
                publish_trial_file(written, Path(tmp) / "trials" / f"{plan.file_stem}.parquet")
                publishing = time.perf_counter() - begun
            rows.append({"trial": plan.file_stem, "training": spent["training"],
                         "prediction": total - spent["training"], "publishing": publishing,
                         "epochs": max(r["epoch"] for r in result.history)})
    finally:
        trial_module.train_stack = train_stack
    return rows


def lpt_makespan(durations: list[float], slots: int) -> float:
    """Wall time of the trials on `slots` slots, started longest first."""
    loads = [0.0] * slots
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


# ---------------------------------------------------------------- end to end


def end_to_end(args: argparse.Namespace) -> dict[str, float]:
    """sweep.run without report, the report on its folder, and the plain loop."""
    plain_args = [sys.executable, str(BENCH_SWEEP), "--methods", args.methods, "--seeds",
                  args.seeds, "--parallel", str(args.parallel), "--plain-child"]
    if args.epochs:
        plain_args += ["--epochs", args.epochs]
    sweeps, plains, reports = [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bench_study_") as tmp:
            sweep_argv = [sys.executable, "-m", "sweep.run", *_cli_args(args), "--no-report",
                          "--out", f"{tmp}/sweep"]
            if repeat % 2:  # alternate the order: load drifts, both see it
                plains.append(_wall(plain_args))
                sweeps.append(_wall(sweep_argv))
            else:
                sweeps.append(_wall(sweep_argv))
                plains.append(_wall(plain_args))
            reports.append(_wall([sys.executable, "-m", "analysis.report", f"{tmp}/sweep"]))
    return {"sweep": statistics.median(sweeps), "plain": statistics.median(plains),
            "report": statistics.median(reports), "runs": args.repeats}


# ---------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="all")
    p.add_argument("--seeds", default="15")
    p.add_argument("--epochs", default=None)
    p.add_argument("--parallel", type=int, default=min(os.cpu_count() or 1, 2))
    p.add_argument("--repeats", type=int, default=1, help="end-to-end runs of each side")
    p.add_argument("--repo", type=Path, default=REPO, help="checkout whose code is timed")
    p.add_argument("--phases-only", action="store_true", help="skip the end-to-end runs")
    args = p.parse_args()

    import torch

    from sweep.cli import parse_options
    from sweep.inputs import load_inputs
    from sweep.study import study_from_options

    print(f"code: {REPO} (git {_git_head()}); load average {os.getloadavg()[0]:.1f}; "
          f"{args.parallel} slots", flush=True)
    driver = _wall([sys.executable, "-c", DRIVER_IMPORTS], repeats=3)
    study = study_from_options(parse_options(_cli_args(args)))
    started = time.perf_counter()
    dataset, features = load_inputs(study)
    loading = time.perf_counter() - started
    ray_times = ray_phases(study, dataset, features)
    torch.set_num_threads(1)
    trials = trial_phases(study, dataset, features)
    e2e = None if args.phases_only else end_to_end(args)

    slots = args.parallel
    training = sum(t["training"] for t in trials)
    prediction = sum(t["prediction"] for t in trials)
    publishing = sum(t["publishing"] for t in trials)
    rows = [
        ("driver start + imports", driver, driver, "fresh process, median of 3"),
        ("data loading", loading, loading, ""),
        ("Ray start", ray_times["Ray start"], ray_times["Ray start"], "local instance"),
        ("trial actor start + imports", ray_times["trial actor start + imports"],
         ray_times["trial actor start + imports"], "once per slot, slots in parallel"),
        ("data shipping (put + get)", ray_times["data shipping (put + get)"],
         ray_times["data shipping (put + get)"], ""),
        ("training", training, training / slots,
         f"{len(trials)} trials, 1 thread, CPU s; wall = sum / {slots} slots"),
        ("MC dropout + prediction + scoring", prediction, prediction / slots, "CPU s"),
        ("publishing", publishing, publishing / slots, ""),
        ("Ray stop", ray_times["Ray stop"], ray_times["Ray stop"], ""),
    ]
    if e2e is not None:
        rows.append(("report", e2e["report"], e2e["report"], "fresh process"))
    model_wall = sum(r[2] for r in rows)
    print(f"\n{'phase':<36} {'seconds':>8} {'wall s':>7} {'share':>6}  note")
    for name, seconds, wall, note in rows:
        print(f"{name:<36} {seconds:>8.2f} {wall:>7.2f} {100 * wall / model_wall:>5.1f}%  {note}")
    print(f"{'modelled wall time':<36} {'':>8} {model_wall:>7.2f}")
    print("\nper trial (CPU s):  " + "; ".join(
        f"{t['trial']} train {t['training']:.1f} + predict {t['prediction']:.1f} "
        f"({t['epochs']} epochs)" for t in trials))
    durations = [t["training"] + t["prediction"] for t in trials]
    print(f"trials longest first on {slots} slots: {lpt_makespan(durations, slots):.1f} s; "
          f"ideal (sum / slots) {sum(durations) / slots:.1f} s")
    if e2e is not None:
        total = e2e["sweep"] + e2e["report"]
        print(f"\nend to end (median of {e2e['runs']}): sweep.run --no-report {e2e['sweep']:.1f} s"
              f" + report {e2e['report']:.1f} s = {total:.1f} s; plain loop {e2e['plain']:.1f} s;"
              f" sweep / plain {e2e['sweep'] / e2e['plain']:.3f}")
    print(f"load average now {os.getloadavg()[0]:.1f}")


def _git_head() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "?"


if __name__ == "__main__":
    main()
