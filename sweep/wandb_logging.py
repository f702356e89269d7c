"""W&B logging through Ray's own WandbLoggerCallback: one W&B run per trial (config, metrics
per epoch, final metrics).

Offline by default: runs are written to DIR/wandb/offline-run-* and need neither a
network nor an API key; ``wandb sync`` uploads them later (docs/sweep.md). Online mode reads
the key from the WANDB_API_KEY environment variable or ``wandb login``; this module never
receives the key. Ray's callback would copy WANDB_API_KEY into its logging actor's runtime
env, which Ray logs in plain text; the sweep withholds the key from the driver's environment
while Tune runs (sweep.ray_runtime.secrets_withheld) and the actor, started on the driver's
node, inherits it from the local Ray instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from analysis.wandb_summary import WANDB_MODES


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
