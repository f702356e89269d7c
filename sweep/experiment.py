"""One Ray Tune experiment of the sweep, seed sweep and Optuna search alike: the trial,
how its file is published into the sweep folder, the driver's callbacks (progress line,
W&B) and the Tuner itself.

In the order of a trial's life: the trainable (a thin wrapper around ONE
``mer_uq.trial.run_trial`` call, returning its Parquet as a checkpoint), the publisher
that copies that file into DIR/trials the moment the trial completes, the progress line,
W&B logging, and the Tuner with the config and callbacks every experiment shares. The
driver imports this module only once Ray is starting (it imports Ray Tune).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune
from ray.tune import Callback
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from analysis.write.wandb_summary import WANDB_MODES
from mer_uq.data.subsample import DataAxes
from mer_uq.families import describe_predictions
from mer_uq.schema import DIMENSIONS, SPLITS
from mer_uq.sweep_folder import (
    TUNE_DIR,
    TrialRecordKey,
    publish_trial_file,
    trial_file,
    write_trial_parquet,
)
from sweep.cli import SweepOptions
from sweep.ray_runtime import TrialResources, secrets_withheld
from sweep.study import Study

if TYPE_CHECKING:
    from mer_uq.trial import TrialSpec


# ======================================================================================
# The Ray Tune trial: a thin wrapper around ONE ``mer_uq.trial.run_trial`` call.
#
# Everything scientific happens in mer_uq. This wrapper only (1) turns the Tune config into a
# TrialSpec, (2) forwards each epoch's metrics to Tune, and (3) hands the predictions back as
# a Tune checkpoint. Going through a checkpoint rather than writing into the sweep folder
# directly is what lets a trial run on any node of a cluster: Tune persists the checkpoint
# to the shared ``storage_path`` (NFS or a bucket), and the driver publishes it into
# DIR/trials (TrialPublisher, below).
# ======================================================================================

# mer_uq.trial (torch) is imported where a trial is built, not here: the driver imports
# this module for its config keys and never trains (trial workers preload mer_uq.trial).

# Keys of the Tune config. "plan" is the grid axis; the rest are constants or Optuna's.
PLAN = "plan"
# The trial file's name inside the trial's checkpoint (TrialPublisher publishes it).
PREDICTIONS_FILE = "predictions.parquet"
MODEL = "model"
TRAIN = "train"
MC_PASSES = "mc_passes"
# Searched hyperparameters override the model config under these names.
SEARCHED_MODEL_KEYS: tuple[str, ...] = ("dropout", "hidden_width")
# Test hook: a marker path. The first trial to finish an epoch while the marker is absent
# creates it and kills its own worker process (os._exit), imitating a lost node; Tune must
# then retry the trial (FailureConfig). Set by the driver from MER_UQ_TEST_CRASH_ONCE.
CRASH_ONCE_MARKER = "_crash_once_marker"


def build_spec(config: dict[str, Any]) -> TrialSpec:
    """The TrialSpec a Tune config describes (searched values override the model)."""
    from mer_uq.trial import FCNConfig, TrainConfig, TrialSpec

    plan = config[PLAN]
    model = dict(config[MODEL])
    model.update({k: config[k] for k in SEARCHED_MODEL_KEYS if k in config})
    return TrialSpec(
        training=plan["training"],
        seeds=tuple(plan["seeds"]),
        model=FCNConfig(**model),
        train=TrainConfig(**config[TRAIN]),
        mc_passes=int(config[MC_PASSES]),
        methods=tuple(plan["methods"]),
        data=DataAxes.from_dict(plan["data"]) if plan.get("data") else None,
    )


def _node_record() -> dict[str, str]:
    """Where the trial ran: shown in the trial file, and how the multi-node test proves
    trials were spread over nodes."""
    import ray

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "pid": str(os.getpid()),
        "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
    }


def _crash_once(marker: str | None) -> None:
    if marker and not Path(marker).exists():
        Path(marker).write_text(f"crashed pid {os.getpid()}\n")
        os._exit(1)


def _scalars(metrics: dict[str, Any]) -> dict[str, float | int]:
    """Numbers only: Tune, Optuna and W&B all want plain scalars."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}


def train_trial(config: dict[str, Any], dataset: Any, features: Any) -> None:
    """Tune function trainable. ``dataset`` and ``features`` arrive through the object
    store (tune.with_parameters): loaded once by the driver, never re-read per trial."""
    from mer_uq.trial import run_trial

    spec = build_spec(config)
    feature_set = config[PLAN].get("feature_set")
    if feature_set is not None:  # the feature axis: the tables arrive by label
        features = features[feature_set["label"]]
    crash_marker = config.get(CRASH_ONCE_MARKER)
    started = time.perf_counter()

    def on_epoch(metrics: dict[str, Any]) -> None:
        tune.report(_scalars(metrics))
        _crash_once(crash_marker)

    result = run_trial(spec, dataset, features, on_epoch=on_epoch)
    key = TrialRecordKey
    record = {
        key.TRAINING: spec.training,
        key.SEEDS: list(spec.seeds),
        key.METHODS: list(config[PLAN]["methods"]),
        key.TRIAL_ID: config[PLAN]["trial_id"],
        key.MODEL: dataclasses.asdict(spec.model),
        key.TRAIN: dataclasses.asdict(spec.train),
        key.MC_PASSES: spec.mc_passes,
        # Songs per split it trained and scored on (fewer with --allow-missing-features).
        key.SONGS: {split: len(dataset.song_ids(split)) for split in SPLITS},
        key.MC_SD_DDOF: spec.mc_sd_ddof,
        key.METRICS: _scalars(result.metrics),
        key.NODE: _node_record(),
        key.DURATION_S: round(time.perf_counter() - started, 3),
        **({key.DATA: config[PLAN]["data"]} if config[PLAN].get("data") else {}),
        **({key.FEATURE_SET: feature_set} if feature_set is not None else {}),
    }
    # A family beyond the Gaussian describes its parameter columns (mer_uq.families).
    distributions = describe_predictions(result.predictions, DIMENSIONS)
    if distributions:
        record[key.DISTRIBUTIONS] = distributions
    with tempfile.TemporaryDirectory(prefix="mer_uq_trial_") as tmp:
        write_trial_parquet(Path(tmp) / PREDICTIONS_FILE, result.predictions, record)
        final = {**_scalars(result.metrics), "node_ip": record[key.NODE]["node_ip"]}
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))


# ======================================================================================
# Driver-side: publish each finished trial's predictions into DIR/trials the moment the
# trial completes.
#
# Trials hand their Parquet back as a Tune checkpoint (train_trial, above); this callback
# copies it to ``DIR/trials/<training>__<trial-id>.parquet`` atomically. Publishing per trial,
# not after ``Tuner.fit`` returns, is what makes an interrupted driver lose nothing that had
# finished; naming the file after the trial's seeds, not Tune's trial name, is what stops a
# retried or resumed trial from ever producing a second copy.
# ======================================================================================

def plan_file_stem(trial: Any) -> str:
    """Seed-sweep trials: the plan's ``<training>__<seeds>``, stable across reruns."""
    return trial.config[PLAN]["file_stem"]


class TrialPublisher(Callback):
    """Copies each completed trial's predictions into ``trials_dir`` as ``name_of(trial)``."""

    def __init__(self, trials_dir: Path, name_of: Callable[[Any], str] = plan_file_stem) -> None:
        self.trials_dir = Path(trials_dir)
        self.name_of = name_of

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        checkpoint = trial.checkpoint
        if checkpoint is None:
            raise RuntimeError(f"trial {trial} completed without its predictions checkpoint")
        target = trial_file(self.trials_dir, self.name_of(trial))
        with checkpoint.as_directory() as folder:
            publish_trial_file(Path(folder) / PREDICTIONS_FILE, target)


# ======================================================================================
# One readable progress line instead of Ray's trial tables.
#
# Users of a long sweep need three things: how many trials are done / running / failed, and
# when it will end. Once a trial has finished, the ETA weights each running trial by the
# fraction of its epochs done, so it moves during the (few, long) trials of the default
# study; before, it reads "unknown".
# ======================================================================================

EPOCH_KEY = "epoch"
# Tune logs every failed attempt with its full traceback (~20 lines) through this logger;
# the printer says it in one line and points at the trial's error file instead.
TUNE_CONTROLLER_LOGGER = "ray.tune.execution.tune_controller"


class _DropTrialTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trial task failed")


def error_file(trial: Any) -> str:
    """Where the trial's full traceback lies: its error.txt in the Tune storage (which
    outlives Ray's session folder), else the trial's folder."""
    name = getattr(getattr(trial, "run_metadata", None), "error_filename", None)
    folder = getattr(trial, "path", None) or getattr(trial, "local_path", None) or "?"
    return str(Path(folder, name)) if name else str(folder)


def format_duration(seconds: float) -> str:
    """Compact h/m/s text for the progress line."""
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class ProgressPrinter(Callback):
    """Prints ``done/running/failed`` and an ETA on every trial event, and at most every
    ``interval_s`` seconds on epoch results.

    Writes to whatever ``sys.stdout`` is at print time: Tune pickles its callbacks, and a
    stored stream object may not pickle."""

    def __init__(
        self,
        total: int,
        max_epochs: int,
        label: str = "sweep",
        interval_s: float = 10.0,
    ) -> None:
        self.total = total
        self.max_epochs = max(1, max_epochs)
        self.label = label
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.last_print = 0.0
        self.running: dict[str, float] = {}  # trial id -> fraction of epochs done
        self.done = 0
        self.failed = 0

    def eta_seconds(self) -> float | None:
        """Remaining time if work goes on at the average pace so far; None until a trial
        has finished (before that, the epoch fractions alone say nothing of the time a
        trial spends before its first epoch and after its last: 0m00s was printed while
        the only trial still wrote its predictions)."""
        finished_work = self.done + self.failed + sum(self.running.values())
        if self.done == 0 or finished_work <= 0:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed * (self.total - finished_work) / finished_work

    def line(self) -> str:
        eta = self.eta_seconds()
        return (
            f"[{self.label}] trials {self.done}/{self.total} done, {len(self.running)} running, "
            f"{self.failed} failed | elapsed {format_duration(time.monotonic() - self.started)}"
            f" | ETA {'unknown' if eta is None else format_duration(eta)}"
        )

    def _print(self, force: bool) -> None:
        now = time.monotonic()
        if force or now - self.last_print >= self.interval_s:
            self.last_print = now
            print(self.line(), file=sys.stdout, flush=True)

    def setup(self, **info: Any) -> None:
        logger = logging.getLogger(TUNE_CONTROLLER_LOGGER)
        if not any(isinstance(f, _DropTrialTracebacks) for f in logger.filters):
            logger.addFilter(_DropTrialTracebacks())

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running[trial.trial_id] = 0.0
        self._print(force=True)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if EPOCH_KEY in result and trial.trial_id in self.running:
            self.running[trial.trial_id] = min(1.0, float(result[EPOCH_KEY]) / self.max_epochs)
        self._print(force=False)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.pop(trial.trial_id, None)
        self.done += 1
        self._print(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.pop(trial.trial_id, None)
        self.failed += 1
        self._print(force=True)
        print(f"[{self.label}] trial {trial} failed after its retries; full trace: "
              f"{error_file(trial)}", file=sys.stdout, flush=True)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed attempt that Tune will retry (FailureConfig): running again, not failed."""
        self.running[trial.trial_id] = 0.0
        print(f"[{self.label}] trial {trial} failed (its worker died or raised); retrying; "
              f"full trace: {error_file(trial)}", file=sys.stdout, flush=True)


# ======================================================================================
# W&B logging through Ray's own WandbLoggerCallback: one W&B run per trial (config, metrics
# per epoch, final metrics).
#
# Offline by default: runs are written to DIR/wandb/offline-run-* and need neither a
# network nor an API key; ``wandb sync`` uploads them later (docs/sweep.md). Online mode reads
# the key from the WANDB_API_KEY environment variable or ``wandb login``; this module never
# receives the key. Ray's callback would copy WANDB_API_KEY into its logging actor's runtime
# env, which Ray logs in plain text; the sweep withholds the key from the driver's environment
# while Tune runs (sweep.ray_runtime.secrets_withheld) and the actor, started on the driver's
# node, inherits it from the local Ray instead.
# ======================================================================================

def wandb_callback(project: str, mode: str, group: str | None, directory: Path):
    """A WandbLoggerCallback for ``project``, in ``mode``, grouping the sweep's trials.

    ``directory`` is passed to wandb.init: without it W&B writes into Tune's per-session
    staging folder under /tmp/ray, which is deleted with the Ray session."""
    if mode not in WANDB_MODES:
        raise ValueError(f"--wandb-mode must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
    try:
        from ray.air.integrations.wandb import WandbLoggerCallback
    except ImportError as err:  # pragma: no cover - depends on the install
        raise RuntimeError("--wandb needs wandb: pip install 'mer-uq[wandb]'") from err
    # Ray decides whether it needs an API key from WANDB_MODE (offline/disabled: none).
    os.environ["WANDB_MODE"] = mode
    directory.mkdir(parents=True, exist_ok=True)

    class KeyWithheldWandbCallback(WandbLoggerCallback):
        """Ray's setup insists on finding the key in os.environ, where it is withheld while
        Tune runs; the actor that talks to W&B has it from its own environment."""

        def setup(self, *args, **kwargs):
            os.environ["WANDB_MODE"] = "offline"  # skips only Ray's key lookup
            try:
                super().setup(*args, **kwargs)
            finally:
                os.environ["WANDB_MODE"] = mode

    return KeyWithheldWandbCallback(
        project=project, group=group, mode=mode, log_config=True, dir=str(directory.resolve())
    )


# ======================================================================================
# Build and run one Ray Tune experiment; shared by the seed sweep and the Optuna search.
#
# The settings here are the ones measured to matter on small trials: ``reuse_actors=True``
# (a fresh trial actor costs 3-7 s), the data passed once through the object store
# (``tune.with_parameters``), Ray's own console tables off (our ProgressPrinter instead).
# ======================================================================================

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
    return str((sweep_dir / TUNE_DIR).resolve())


# ======================================================================================
# What every Tune experiment of the sweep shares, seed sweep and Optuna search alike: the
# trials' constant config, the callbacks, the per-trial resources.
# ======================================================================================

# Test hook (see CRASH_ONCE_MARKER): read by the driver, which then passes
# it to trials in their config (a worker does not see env set after Ray started).
CRASH_ONCE_ENV = "MER_UQ_TEST_CRASH_ONCE"


def base_config(study: Study) -> dict[str, Any]:
    """Tune config shared by every trial (logged to W&B as the run's config)."""
    config: dict[str, Any] = {MODEL: study.model, TRAIN: study.train, MC_PASSES: study.mc_passes}
    if os.environ.get(CRASH_ONCE_ENV):
        config[CRASH_ONCE_MARKER] = os.environ[CRASH_ONCE_ENV]
    return config


def trial_callbacks(
    options: SweepOptions, study: Study, total: int, label: str, sweep_dir: Path
) -> list[Any]:
    """Progress line always; one W&B run per trial with --wandb."""
    max_epochs = int(study.train.get("epochs", 1))
    callbacks: list[Any] = [ProgressPrinter(total=total, max_epochs=max_epochs, label=label)]
    if options.wandb:
        callbacks.append(wandb_callback(options.wandb_project, options.wandb_mode,
                                        group=f"{sweep_dir.name}-{label}", directory=sweep_dir))
    return callbacks


def experiment_name(sweep_dir: Path, label: str) -> str:
    """Unique per launch: a resumed sweep starts a new Tune experiment beside the old."""
    return f"{sweep_dir.name}-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
