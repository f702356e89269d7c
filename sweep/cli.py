"""Command line of ``python -m sweep.run``: flags -> a validated SweepOptions.

Every option is declared once, as a ``mer_uq.study_options.Option``: the study options
(what a study trains; mer_uq.study_options.STUDY_OPTIONS) and, here, the run options (where
and how it runs). The parser, the ``SweepOptions`` class (one field per option) and the
refusal of study flags beside a record (sweep.folder_guards) are built from them.

Parsing is kept apart from running so that tests (and notebooks) can build the options the
CLI would build and call the sweep in-process, sharing one Ray instance.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from analysis.write.wandb_summary import DEFAULT_MODE, DEFAULT_PROJECT, WANDB_MODES
from mer_uq.cli_args import non_negative_int, positive_int
from mer_uq.study_options import (
    AXES,
    DATA,
    OTHER_DATA,
    STUDY_OPTIONS,
    TRAINING,
    WHAT,
    Option,
)

# CLI groups of the run options: where and how a run runs, not what the study trains.
OUTPUT = "output"
RAY = "Ray"
SEARCH = "hyperparameter search"
WANDB = "W&B"
# Order of the groups in --help.
GROUPS: tuple[str, ...] = (WHAT, DATA, OTHER_DATA, AXES, OUTPUT, RAY, TRAINING, SEARCH, WANDB)

# The options of how and where a run runs. ``beside_record``: still applies when the study
# comes from a record (--resume, --from); the others are refused there by name.
RUN_OPTIONS: tuple[Option, ...] = (
    Option("out", None, OUTPUT, type=Path,
           help="sweep folder (default: a new runs/<UTC timestamp>)"),
    Option("resume", None, OUTPUT, type=Path,
           help="continue the sweep in this folder: its sweep.json fixes methods, seeds and "
                "settings (those flags are refused); finished trials are not rerun"),
    Option("from_record", None, OUTPUT, type=Path, flag="--from",
           help="repeat the study a sweep.json records (DIR/sweep.json) in a new --out "
                "folder: same methods, seeds, data and settings (those flags are refused)"),
    Option("report", True, OUTPUT, action="store_false", flag="--no-report",
           beside_record=True, help="skip the analysis report at the end"),
    Option("address", None, RAY, beside_record=True,
           help="Ray cluster to join: auto or HOST:PORT (default: start a local single-node "
                "Ray)"),
    Option("storage_path", None, RAY, beside_record=True,
           help="Ray Tune storage; on a multi-node cluster a path every node sees (NFS) or a "
                "bucket (s3://...). Default: DIR/tune"),
    Option("cpus_per_trial", 1.0, RAY, type=float, beside_record=True),
    Option("gpus_per_trial", 0.0, RAY, type=float, beside_record=True,
           help="GPUs per trial; fractions 1/k (0.5, 0.25, 0.2, 0.1) share a GPU"),
    Option("max_concurrent", None, RAY, type=positive_int, beside_record=True,
           help="most trials at once (default: as many as resources allow)"),
    Option("max_failures", 2, RAY, type=non_negative_int, beside_record=True,
           help="retries of a trial whose worker fails"),
    Option("search", None, SEARCH, choices=("optuna",),
           help="Optuna over dropout (0.1..0.7) and hidden width (64..512) on VALIDATION "
                "loss; writes DIR/search/best_config.json"),
    Option("search_method", "nll", SEARCH, help="method whose model is searched"),
    Option("num_samples", 20, SEARCH, type=positive_int, help="Optuna trials"),
    Option("wandb", False, WANDB, action="store_true", beside_record=True,
           help="one W&B run per trial"),
    Option("wandb_project", DEFAULT_PROJECT, WANDB, beside_record=True),
    Option("wandb_mode", DEFAULT_MODE, WANDB, choices=WANDB_MODES, beside_record=True,
           help="offline needs no key or network; `wandb sync` uploads later"),
)

# Every option of ``python -m sweep.run``, in the order --help shows them.
OPTIONS: tuple[Option, ...] = tuple(
    sorted((*STUDY_OPTIONS, *RUN_OPTIONS), key=lambda option: GROUPS.index(option.group)))

def _knob_overrides(knob: str) -> Any:
    def overrides(self: Any) -> dict[str, float | int]:
        """The {setting: value} of the training knobs given on the command line."""
        return {o.name: getattr(self, o.name) for o in OPTIONS
                if o.knob == knob and getattr(self, o.name) is not None}
    return property(overrides)


# Everything one sweep run needs: one field per option, with the option's default.
SweepOptions = dataclasses.make_dataclass(
    "SweepOptions",
    [(o.name, Any, dataclasses.field(default=o.default)) for o in OPTIONS],
    namespace={"model_overrides": _knob_overrides("model"),
               "train_overrides": _knob_overrides("train"),
               "__doc__": "Everything one sweep run needs; every field has the CLI's default "
                          "(one field per declared option: sweep.cli.OPTIONS)."},
)
SweepOptions.__module__ = __name__  # pickles and reprs as sweep.cli.SweepOptions


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is ONE line (argparse prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_option(group: Any, option: Option) -> None:
    """One declared option as an argparse argument of ``group``."""
    kwargs: dict[str, Any] = {"dest": option.name, "default": option.default}
    if option.action is not None:
        kwargs["action"] = option.action
    else:
        if option.type is not None:
            kwargs["type"] = option.type
        if option.nargs is not None:
            kwargs.update(nargs=option.nargs, default=list(option.default))
        if option.choices is not None:
            kwargs["choices"] = list(option.choices)
    if option.help is not None:
        kwargs["help"] = option.help
    group.add_argument(option.flag_text, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every declared option, grouped as --help shows them."""
    parser = OneLineParser(
        prog="python -m sweep.run",
        description=(
            "Train the uncertainty methods over many seeds on Ray Tune and print the paper's "
            "Table 2 (predicted mean) and Table 3 (predicted SD). Default: the paper's five "
            "methods x 15 seeds on the bundled DEAM openSMILE features, on this machine."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    groups = {title: parser.add_argument_group(title) for title in GROUPS}
    for option in OPTIONS:
        add_option(groups[option.group], option)
    return parser


def parse_options(argv: Sequence[str] | None = None) -> Any:
    """The SweepOptions the command line asks for (a list-valued flag as a tuple)."""
    args = vars(build_parser().parse_args(argv))
    return SweepOptions(**{name: tuple(value) if isinstance(value, list) else value
                           for name, value in args.items()})
