"""``python -m sweep.run``: the study (methods x seeds) or an Optuna search, on Ray Tune.

Order of work, and why:
1. cheap checks (the address answers, the resources are schedulable), then resolve the
   study, or reload it from sweep.json on --resume: bad input fails in a second with one
   clear line, before anything is loaded, written or started;
2. load dataset and features ONCE in the driver and check they fit (sweep.inputs);
3. write DIR/sweep.json before any trial runs, so an interrupted sweep is resumable and
   the analysis knows what was asked even if nothing finished (sweep.seed_sweep);
4. run only the trials whose file is not yet in DIR/trials;
5. print the tables (the analysis report, or a fallback) and where everything is.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mer_uq.data.errors import DeamDataError
from sweep.cli import SweepOptions, parse_options
from sweep.experiment import trial_resources
from sweep.folder import TRIALS_DIR, SweepFolderError, new_run_dir, read_sweep_json
from sweep.grid import PlanError
from sweep.inputs import FeatureCoverageError
from sweep.ray_runtime import RayConnectionError, check_address
from sweep.seed_sweep import run_seed_sweep
from sweep.study import Study, StudyConfigError, study_from_options
from sweep.tuning import ResourceError

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


def run(options: SweepOptions) -> int:
    """Run what the options ask for; the process exit code."""
    check_address(options.address)
    trial_resources(options).validate()
    study, sweep_dir, resuming = _resolve(options)
    if options.search == "optuna":
        from sweep.search import run_search

        return run_search(options, study, sweep_dir)
    return 1 if run_seed_sweep(options, study, sweep_dir, resuming) else 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(parse_options(argv))
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
