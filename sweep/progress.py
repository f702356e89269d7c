"""One readable progress line instead of Ray's trial tables.

Users of a long sweep need three things: how many trials are done / running / failed, and
when it will end. The ETA weights each trial by the fraction of its epochs done, so it
moves during the (few, long) trials of the default study, not only when one finishes.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

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
        """Remaining time if work goes on at the average pace so far; None before any."""
        finished_work = self.done + self.failed + sum(self.running.values())
        if finished_work <= 0:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed * (self.total - finished_work) / finished_work

    def line(self) -> str:
        eta = self.eta_seconds()
        return (
            f"[{self.label}] trials {self.done}/{self.total} done, {len(self.running)} running, "
            f"{self.failed} failed | elapsed {format_duration(time.monotonic() - self.started)}"
            f" | ETA {'?' if eta is None else format_duration(eta)}"
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
