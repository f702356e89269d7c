"""The default study through ``python -m sweep.run`` vs the same trials in a plain loop.

Run by hand, never in CI:

    python benchmarks/bench_sweep.py                # paper methods x 15 seeds, paper settings
    python benchmarks/bench_sweep.py --seeds 3 --epochs 5   # a quick look

Both sides run the same TrialSpecs at the same parallelism (``--parallel`` trials at once,
one CPU each): the sweep through Ray Tune (trial actors, object store, checkpoints, the
trial files), the baseline through ``concurrent.futures.ProcessPoolExecutor`` calling
``mer_uq.trial.run_trial`` directly, with the data loaded once per worker process. The
two sides are timed as a user meets them: each a fresh process (interpreter, imports,
data loading; for the sweep also Ray start-up), report off (``--with-report`` adds it to
the sweep, to time the whole default command).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mer_uq.data import load_deam, load_features  # noqa: E402
from mer_uq.sweep_folder import read_trial_record  # noqa: E402
from mer_uq.trial import TrialSpec, run_trial  # noqa: E402
from sweep.cli import parse_options  # noqa: E402
from sweep.experiment import MC_PASSES, MODEL, PLAN, TRAIN, build_spec  # noqa: E402
from sweep.study import (  # noqa: E402
    longest_first,
    plan_trials,
    resolve_methods,
    resolve_seeds,
    study_from_options,
)

_DATA: dict[str, Any] = {}


def _load_data() -> None:
    _DATA["dataset"], _DATA["features"] = load_deam(), load_features()


def _one_trial(spec: TrialSpec) -> float:
    started = time.perf_counter()
    run_trial(spec, _DATA["dataset"], _DATA["features"])
    return time.perf_counter() - started


def plain_loop(specs: list[TrialSpec], parallel: int) -> list[float]:
    """The same trials without Ray: a process pool calling run_trial; trial durations."""
    with ProcessPoolExecutor(max_workers=parallel, initializer=_load_data) as pool:
        return list(pool.map(_one_trial, specs))


def through_plain_loop(bench_args: list[str]) -> float:
    """The plain loop as a fresh process too (interpreter, imports, data loading), so both
    sides are timed as a user meets them on the command line."""
    argv = [sys.executable, str(Path(__file__).resolve()), *bench_args, "--plain-child"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"plain loop failed:\n{done.stderr[-3000:]}")
    print(f"plain loop: {wall:7.1f} s wall (fresh process); {done.stdout.strip()}")
    return wall


def through_sweep(cli_args: list[str], with_report: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        argv = [sys.executable, "-m", "sweep.run", *cli_args, "--out", f"{tmp}/sweep"]
        if not with_report:
            argv.append("--no-report")
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"sweep.run failed:\n{done.stderr[-3000:]}")
        files = sorted(Path(tmp, "sweep", "trials").glob("*.parquet"))
        durations = [read_trial_record(f)["duration_s"] for f in files]
    print(f"sweep.run:  {wall:7.1f} s wall ({len(files)} trial files, Ray start-up included); "
          f"trials {', '.join(f'{d:.1f}' for d in durations)} s")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="all")
    p.add_argument("--seeds", default="15")
    p.add_argument("--epochs", default=None)
    p.add_argument("--parallel", type=int, default=os.cpu_count() or 1)
    p.add_argument("--with-report", action="store_true")
    p.add_argument("--repeats", type=int, default=1, help="alternating runs of each side")
    p.add_argument("--plain-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()

    cli_args = ["--methods", args.methods, "--seeds", args.seeds,
                "--max-concurrent", str(args.parallel), "--cpus-per-trial", "1"]
    if args.epochs:
        cli_args += ["--epochs", args.epochs]
    study = study_from_options(parse_options(cli_args))
    # The sweep's launch order (longest first), so both sides balance their slots alike.
    plans = longest_first(
        plan_trials(resolve_methods(args.methods), resolve_seeds([int(args.seeds)]), None)
    )
    specs = [
        build_spec({PLAN: {"training": p.training, "seeds": p.seeds, "methods": p.methods},
                    MODEL: study.model, TRAIN: study.train, MC_PASSES: study.mc_passes})
        for p in plans
    ]
    if args.plain_child:
        durations = plain_loop(specs, args.parallel)
        print(f"trials {', '.join(f'{d:.1f}' for d in durations)} s")
        return
    print(f"{len(specs)} trials ({', '.join(s.training for s in specs)}), "
          f"{len(study.seeds)} seeds each, {args.parallel} at a time, "
          f"epochs <= {study.train['epochs']}, {study.train['steps_per_epoch']} steps/epoch")
    bench_args = ["--methods", args.methods, "--seeds", args.seeds,
                  "--parallel", str(args.parallel)]
    if args.epochs:
        bench_args += ["--epochs", args.epochs]
    sweep_walls, plain_walls = [], []
    for repeat in range(args.repeats):  # alternate the order: load drifts, both see it
        if repeat % 2 == 0:
            sweep_walls.append(through_sweep(cli_args, args.with_report))
            plain_walls.append(through_plain_loop(bench_args))
        else:
            plain_walls.append(through_plain_loop(bench_args))
            sweep_walls.append(through_sweep(cli_args, args.with_report))
    sweep_wall, plain_wall = statistics.median(sweep_walls), statistics.median(plain_walls)
    print(f"median of {args.repeats}: sweep.run {sweep_wall:.1f} s, plain loop {plain_wall:.1f} s"
          f"; ratio {sweep_wall / plain_wall:.3f} (overhead "
          f"{100 * (sweep_wall / plain_wall - 1):+.1f} %); load average now "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
