"""Time `python -m analysis.report` on one sweep folder, old code against new.

    python benchmarks/bench_report.py SWEEP_DIR [--before CODE_DIR] [--repeats 3]

Each run works on a fresh copy of SWEEP_DIR (its report/ removed), so the source folder is
never written. Runs are interleaved (before, after, before, after, ...) so that a busy
machine slows both alike; wall and CPU (user + sys of the child) seconds are printed per
run and as medians. CODE_DIR is a checkout of the older code (e.g. `git archive <commit> |
tar -x -C DIR`); it is put first on PYTHONPATH, the current checkout otherwise.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(code_dir: Path, sweep_dir: Path, extra: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one report run on a copy of the folder."""
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        copy = Path(tmp) / sweep_dir.name
        shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("report", "tune"))
        env = {**os.environ, "PYTHONPATH": str(code_dir)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "analysis.report", str(copy), *extra],
                       cwd=code_dir, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--before", type=Path, default=None, help="checkout of the old code")
    parser.add_argument("--repeats", type=int, default=3)
    args, extra = parser.parse_known_args(argv)
    variants = ([("before", args.before.resolve())] if args.before else []) + [("after", REPO)]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    for i in range(args.repeats):
        for name, code in variants:
            wall, cpu = run_once(code, args.sweep_dir.resolve(), extra)
            times[name].append((wall, cpu))
            print(f"run {i + 1} {name:6s} wall {wall:7.2f} s  cpu {cpu:7.2f} s", flush=True)
    for name, values in times.items():
        print(f"median {name:6s} wall {statistics.median(v[0] for v in values):7.2f} s  "
              f"cpu {statistics.median(v[1] for v in values):7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
