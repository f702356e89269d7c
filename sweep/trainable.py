"""The Ray Tune trial: a thin wrapper around ONE ``mer_uq.trial.run_trial`` call.

Everything scientific happens in mer_uq. This wrapper only (1) turns the Tune config into a
TrialSpec, (2) forwards each epoch's metrics to Tune, and (3) hands the predictions back as
a Tune checkpoint. Going through a checkpoint rather than writing into the sweep folder
directly is what lets a trial run on any node of a cluster: Tune persists the checkpoint
to the shared ``storage_path`` (NFS or a bucket), and the driver publishes it into
DIR/trials (see sweep.collector).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from mer_uq.data.subsample import DataAxes
from mer_uq.schema import SPLITS
from mer_uq.sweep_folder import write_trial_parquet

if TYPE_CHECKING:
    from mer_uq.trial import TrialSpec
# mer_uq.trial (torch) is imported where a trial is built, not here: the driver imports
# this module for its config keys and never trains (trial workers preload mer_uq.trial).

# Keys of the Tune config. "plan" is the grid axis; the rest are constants or Optuna's.
PLAN = "plan"
# The trial file's name inside the trial's checkpoint (sweep.collector publishes it).
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
    crash_marker = config.get(CRASH_ONCE_MARKER)
    started = time.perf_counter()

    def on_epoch(metrics: dict[str, Any]) -> None:
        tune.report(_scalars(metrics))
        _crash_once(crash_marker)

    result = run_trial(spec, dataset, features, on_epoch=on_epoch)
    record = {
        "training": spec.training,
        "seeds": list(spec.seeds),
        "methods": list(config[PLAN]["methods"]),
        "trial_id": config[PLAN]["trial_id"],
        "model": dataclasses.asdict(spec.model),
        "train": dataclasses.asdict(spec.train),
        "mc_passes": spec.mc_passes,
        # Songs per split it trained and scored on (fewer with --allow-missing-features).
        "songs": {split: len(dataset.song_ids(split)) for split in SPLITS},
        "mc_sd_ddof": spec.mc_sd_ddof,
        "metrics": _scalars(result.metrics),
        "node": _node_record(),
        "duration_s": round(time.perf_counter() - started, 3),
        **({"data": config[PLAN]["data"]} if config[PLAN].get("data") else {}),
    }
    with tempfile.TemporaryDirectory(prefix="mer_uq_trial_") as tmp:
        write_trial_parquet(Path(tmp) / PREDICTIONS_FILE, result.predictions, record)
        final = {**_scalars(result.metrics), "node_ip": record["node"]["node_ip"]}
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
