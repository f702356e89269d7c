"""``python -m sweep.run``: the study (methods x seeds) or an Optuna search, on Ray Tune.

Order of work, and why:
1. cheap checks (flags, methods, seeds, resources, --out, the resume record, the address
   answers), importing neither Ray, torch nor the data: bad input fails in a second with
   one clear line (exit 2), before anything is loaded, written or started;
2. load dataset and features ONCE in the driver and check they fit (sweep.inputs);
3. write DIR/sweep.json before any trial runs, so an interrupted sweep is resumable and
   the analysis knows what was asked even if nothing finished (sweep.seed_sweep);
4. run only the trials without a verified file in DIR/trials
   (mer_uq.trial_check.trial_file_problem);
5. write the report, print its two tables and where everything is.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mer_uq import sweep_lock
from mer_uq.sweep_folder import (
    SWEEP_JSON,
    TRIALS_DIR,
    SweepFolderError,
    new_run_dir,
    read_sweep_json,
    read_sweep_record,
)
from sweep.cli import SweepOptions, parse_options
from sweep.folder_guards import (
    check_local_ray_tmp,
    check_path_text,
    refuse_foreign_out,
    refuse_ignored_from_flags,
    refuse_ignored_resume_flags,
)
from sweep.ray_runtime import ResourceError, TrialResources
from sweep.study import (
    PlanError,
    Study,
    StudyConfigError,
    resolve_methods,
    study_from_options,
)

# Exit code of a sweep stopped by Ctrl-C (128 + SIGINT, the shell's convention).
EXIT_INTERRUPTED = 130


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that mean "the request is wrong": one line, exit code 2, no traceback.
    The ones defined next to Ray or the data are imported only once those are (a bad flag
    must not wait for them)."""
    errors: list[type[Exception]] = [
        PlanError, SweepFolderError, StudyConfigError, ResourceError,
    ]  # fmt: skip
    if "sweep.inputs" in sys.modules:
        from mer_uq.data.errors import DeamDataError
        from sweep.inputs import FeatureCoverageError

        errors += [DeamDataError, FeatureCoverageError]
    if "sweep.ray_runtime" in sys.modules:
        from sweep.ray_runtime import RayConnectionError

        errors.append(RayConnectionError)
    return tuple(errors)


def check_out_dir(sweep_dir: Path) -> None:
    """--out must be (or become) a writable folder; checked before any data is loaded."""
    check_path_text(sweep_dir, "--out")
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise SweepFolderError(f"--out {sweep_dir} is a file, not a folder")
    parent = sweep_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SweepFolderError(f"--out {sweep_dir} lies under {parent}, which is a file")
    try:  # a real write, not os.access: root passes access checks on read-only mounts
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as err:
        raise SweepFolderError(f"--out {sweep_dir}: {parent} is not writable "
                               f"({err.strerror})") from err
    if (sweep_dir / TRIALS_DIR).is_dir() and any((sweep_dir / TRIALS_DIR).iterdir()):
        raise SweepFolderError(
            f"--out {sweep_dir} already holds trial results; use --resume {sweep_dir} to "
            "continue that sweep, or choose a new --out"
        )
    refuse_foreign_out(sweep_dir)


def _study_from_record(path: Path, flag: str) -> Study:
    """The study a sweep.json records (``--resume DIR`` or ``--from DIR/sweep.json``), its
    methods and seeds checked like the CLI's."""
    record = read_sweep_json(path.parent) if flag == "--resume" else read_sweep_record(path)
    try:
        resolve_methods(",".join(record["methods"]))
        seeds = [int(s) for s in record["seeds"]]  # explicit seeds, never a count
        if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
            raise PlanError(f"seeds must be distinct and >= 0, got {record['seeds']}")
        return Study.from_record(record)
    except (PlanError, KeyError, TypeError, ValueError) as err:
        what = "resumed" if flag == "--resume" else "repeated"
        raise SweepFolderError(f"{path} cannot be {what}: {err}") from err


@dataclass(frozen=True)
class Request:
    """What a run does, resolved once from the options: the study, the folder it writes,
    whether it continues that folder's sweep, and each trial's resources."""

    study: Study
    sweep_dir: Path
    resuming: bool
    resources: TrialResources


def _new_folder(options: SweepOptions) -> Path:
    """--out, or a new runs/<UTC timestamp> (named once: the folder checked is the folder
    used), checked before any data is loaded."""
    sweep_dir = Path(options.out) if options.out is not None else new_run_dir()
    check_out_dir(sweep_dir)
    return sweep_dir


def _study_of_flags(options: SweepOptions) -> Study:
    """The study the flags ask for: input paths exist, methods and seeds resolve."""
    tables = ([] if options.features is None else  # a comma list: the feature axis
              [("--features", Path(t.strip())) for t in str(options.features).split(",")])
    for flag, path in (*tables, ("--deam", options.deam),
                       ("--split-file", options.split_file), ("--config", options.config)):
        if path is not None and not Path(path).exists():
            raise PlanError(f"{flag} {path}: no such file or folder")
    if options.search:
        resolve_methods(options.search_method)
    return study_from_options(options)


def _check_recorded_paths(study: Study, record: Path) -> None:
    """The files a repeated study reads exist here (a record copied from another machine
    names its paths): one line naming the key, before Ray starts."""
    sets = study.feature_sets or ()
    named = [("deam_dir", study.deam_dir), ("split_file", study.split_file),
             ("features", study.features), ("ratings", study.ratings), ("songs", study.songs),
             *(("feature_sets", s["features"]) for s in sets)]
    for key, path in named:
        if path is not None and not Path(path).exists():
            raise PlanError(f"{record}: key {key!r} names {path}, which does not exist here")


def _check_request(options: SweepOptions) -> Request:
    """Every check that needs neither Ray, torch nor the data (a fraction of a second), and
    what the run then does."""
    if options.max_failures < 0:
        raise PlanError(f"--max-failures must be >= 0, got {options.max_failures}")
    resources = TrialResources(cpus=options.cpus_per_trial, gpus=options.gpus_per_trial)
    resources.validate()
    if options.address is None:
        resources.check_local_cpus()
        check_local_ray_tmp()
    if options.wandb and importlib.util.find_spec("wandb") is None:
        raise PlanError("--wandb needs wandb: pip install 'mer-uq[wandb]'")
    if options.resume is not None:
        check_path_text(Path(options.resume), "--resume")
        refuse_ignored_resume_flags(options)
        study = _study_from_record(Path(options.resume) / SWEEP_JSON, "--resume")
        return Request(study, Path(options.resume), True, resources)
    if options.from_record is not None:
        check_path_text(Path(options.from_record), "--from")
        refuse_ignored_from_flags(options)
        study = _study_from_record(Path(options.from_record), "--from")
        _check_recorded_paths(study, Path(options.from_record))
        return Request(study, _new_folder(options), False, resources)
    study = _study_of_flags(options)
    return Request(study, _new_folder(options), False, resources)


def run(options: SweepOptions) -> int:
    """Run what the options ask for; the process exit code."""
    request = _check_request(options)
    from sweep.ray_runtime import check_address  # a TCP probe; imports no Ray

    check_address(options.address)
    sweep_dir = request.sweep_dir
    # Ctrl-C raises KeyboardInterrupt out of Tuner.fit instead of Tune's own handler ending
    # the run as if trials had failed: the driver then says "interrupted" (exit 130).
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    try:
        with sweep_lock.holding(sweep_dir):  # one writer per folder
            if options.search == "optuna":
                from sweep.search import run_search

                return run_search(options, request.study, sweep_dir, request.resources)
            from sweep.seed_sweep import run_seed_sweep

            failed = run_seed_sweep(options, request.study, sweep_dir, request.resuming,
                                    request.resources)
            return 1 if failed else 0
    except KeyboardInterrupt:
        print(f"[sweep] interrupted; finished trials are kept in {sweep_dir / TRIALS_DIR}; "
              f"continue with: python -m sweep.run --resume {sweep_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(parse_options(argv))
    except _user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
