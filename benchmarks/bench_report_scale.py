"""The report's cost against the number of songs: generic datasets of 2k, 20k, 100k songs.

    python benchmarks/bench_report_scale.py                       # 2000 20000 100000 songs
    python benchmarks/bench_report_scale.py --songs 2000 20000 --work /tmp/scale
    python benchmarks/bench_report_scale.py --songs 20000 --repeats 3 --before /work/main

For each size this builds a seeded generic dataset (``mer_uq.synthetic.make_synthetic``:
10 raters per song, 64-d features, a mean and an SD the features can learn) and writes it
in the generic format the users bring (``mer_uq.data.generic.export_generic``: ratings.csv,
songs.csv, split.csv, scale.json; the features as a Parquet), trains a small sweep on it
through the public command (``python -m sweep.run --ratings ... --songs ... --methods
nll,kld --seeds 5 --epochs 10 --no-report``), then measures

* the whole ``python -m analysis.report DIR`` as a fresh process under ``/usr/bin/time -v``:
  wall seconds and peak resident memory (max RSS), on a fresh copy of the sweep folder;
* the report's phases, each timed on its own in this process (data summary, bootstrap
  cells, reliability of the test songs, scores, comparisons, writing with the figures).

Options this script does not know are passed on to ``analysis.report`` (e.g.
``--summary-reliability-boot 100``). Datasets and sweeps are kept under --work and reused
when they exist (the sweep is not what is measured). ``--before CODE_DIR`` times the
report of another checkout too, interleaved with this one (a busy machine slows both alike).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_SIZES = (2000, 20000, 100000)
N_FEATURES = 64
N_RATERS = 10
DATA_SEED = 0
SWEEP_ARGS = ("--methods", "nll,kld", "--seeds", "5", "--epochs", "10")


def build_dataset(n_songs: int, folder: Path) -> dict[str, Path]:
    """The generic-format files of a seeded synthetic dataset of ``n_songs`` songs."""
    from mer_uq.data.features import save_features
    from mer_uq.data.generic import export_generic
    from mer_uq.synthetic import make_synthetic

    dataset, features = make_synthetic(n_songs=n_songs, n_features=N_FEATURES,
                                       n_raters=N_RATERS, seed=DATA_SEED)
    written = export_generic(dataset, folder)
    written["features"] = save_features(folder / "features.parquet", features.song_ids,
                                        {"features": features.matrix})
    return written


def ensure_sweep(n_songs: int, work: Path) -> Path:
    """The sweep folder of ``n_songs`` songs under ``work``, built once."""
    data_dir, sweep_dir = work / f"data_{n_songs}", work / f"sweep_{n_songs}"
    if (sweep_dir / "sweep.json").exists():
        return sweep_dir
    files = build_dataset(n_songs, data_dir)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sweep.run", "--ratings", str(files["ratings"]),
                    "--songs", str(files["songs"]), "--split-file", str(files["split"]),
                    "--features", str(files["features"]), *SWEEP_ARGS, "--no-report",
                    "--out", str(sweep_dir)], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"{n_songs} songs: sweep built in {time.perf_counter() - start:.1f} s", flush=True)
    return sweep_dir


def timed_report(code_dir: Path, sweep_dir: Path, extra: list[str]
                 ) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + sys), peak RSS in MB) of ``python -m
    analysis.report`` on a copy. On a shared machine the CPU seconds move less than the
    wall seconds with the other load."""
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        copy = Path(tmp) / sweep_dir.name
        shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("report", "tune"))
        env = {**os.environ, "PYTHONPATH": str(code_dir)}
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "analysis.report",
                               str(copy), *extra], cwd=code_dir, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"analysis.report failed on {sweep_dir}:\n{done.stderr}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", done.stderr)[1])
              for kind in ("User", "System"))
    return wall, cpu, peak_kb / 1024.0


def phase_times(sweep_dir: Path) -> dict[str, float]:
    """Seconds of each phase of the report, in this process (the pipeline's own steps)."""
    from analysis.compute import pipeline as p
    from analysis.write.report_files import write_report_files

    settings = p.AnalysisSettings()
    out: dict[str, float] = {}

    def clock(name, fn, *args, **kwargs):
        start = time.perf_counter()
        value = fn(*args, **kwargs)
        out[name] = time.perf_counter() - start
        return value

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        copy = Path(tmp) / sweep_dir.name
        shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("report", "tune"))
        start = time.perf_counter()
        data = p.compute_report_data(copy, settings)
        total = time.perf_counter() - start
        sweep, dataset = data.sweep, data.dataset
        clock("data summary", p.summarise, dataset,
              n_repeats=settings.summary_reliability_repeats,
              n_boot=settings.summary_reliability_boot, seed=settings.seed)
        indices = clock("resample matrix", p.resample_indices, data.song_ids.size,
                        settings.n_boot, settings.seed)
        tables = clock("bootstrap cells", p.compute_tables, data.rows, data.targets, indices)
        clock("test-song reliability", p.reliability_of_songs, dataset.ratings, data.song_ids,
              settings.reliability_repeats, settings.reliability_boot, settings.seed)
        clock("comparisons", p.compare_rows, tables)
        clock("rating scores", p.rating_score_table, data.rows, dataset.ratings, data.song_ids)
        clock("calibration", p.calibration_table, data.rows, dataset.ratings, data.song_ids)
        out["compute (all, once more)"] = total
        clock("write (tables, figures, md, html)", write_report_files, data)
        del sweep
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mer_uq_scale")
    parser.add_argument("--repeats", type=int, default=1, help="report runs per size and code")
    parser.add_argument("--before", type=Path, default=None, help="checkout of the old code")
    parser.add_argument("--no-phases", action="store_true", help="skip the in-process phases")
    args, extra = parser.parse_known_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    variants = ([("before", args.before.resolve())] if args.before else []) + [("after", REPO)]
    for n_songs in args.songs:
        sweep_dir = ensure_sweep(n_songs, args.work)
        for i in range(args.repeats):
            for name, code in variants:
                wall, cpu, peak = timed_report(code, sweep_dir, extra)
                print(f"{n_songs:>7} songs  run {i + 1} {name:6s}  report wall {wall:6.1f} s  "
                      f"cpu {cpu:6.1f} s  peak {peak:7.0f} MB", flush=True)
        if not args.no_phases:
            for phase, seconds in phase_times(sweep_dir).items():
                print(f"{n_songs:>7} songs  phase {phase:34s} {seconds:6.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
