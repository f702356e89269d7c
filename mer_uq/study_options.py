"""The options that decide what a study trains, each declared once: its flag, type, default,
help, CLI group and the sweep.json key(s) it decides, with the check of their values.

Everything else derives from these declarations: ``python -m sweep.run``'s parser and its
options object (sweep.cli, which adds the options of *how* a run runs: output folder, Ray,
search, W&B), the schema of sweep.json (mer_uq.sweep_record), the resolved study and its
record (sweep.study), and the refusal of a study flag beside ``--resume`` or ``--from``
(sweep.folder_guards). They live in mer_uq, not in sweep/, because the schema that checks
sweep.json does: the analysis reads a sweep record through mer_uq alone, without Ray.

Adding an option that a study records is one ``Option(...)`` below plus the code that uses
it (docs/architecture.md, "Extending"). An option whose value is recorded as given (a
number, a switch, a path) needs nothing more: sweep.study records it under its
``RecordKey`` and a resumed or repeated study reads it back as ``study.<key>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_uq.cli_args import non_negative_int, positive_int
from mer_uq.record_checks import (
    Check,
    boolean,
    integer,
    json_object,
    list_of,
    method_names,
    number,
    one_of,
    optional,
    raters_item,
    scale,
    text,
)


@dataclass(frozen=True)
class RecordKey:
    """A sweep.json key an option decides: the check of its value there, whether every
    record must hold it (the contract with the analysis), and its value when an older
    record lacks it."""

    name: str
    check: Check
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Option:
    """One command-line option of a sweep; ``name`` is its field on the options object and,
    with dashes, its flag."""

    name: str
    default: Any
    group: str
    help: str | None = None
    type: Callable[[str], Any] | None = None
    action: str | None = None  # argparse's store_true / store_false
    flag: str | None = None  # a spelling other than --name-with-dashes
    nargs: str | None = None
    choices: tuple[str, ...] | None = None
    # Part of the study's identity: sweep.json records what it decides, and a flag that
    # would change it is refused beside --resume and --from (the record decides there).
    identity: bool = False
    # A run option (not identity) that still applies when the study comes from a record.
    beside_record: bool = False
    # "model" / "train": one setting of mer_uq.config's FCNConfig / TrainConfig, recorded
    # inside sweep.json's "model" / "train" (None: mer_uq's default, the paper's).
    knob: str | None = None
    # The sweep.json keys this option decides alone; an identity option without one feeds
    # a key that several options decide together (sweep.study resolves those).
    record: tuple[RecordKey, ...] = ()

    def __post_init__(self) -> None:
        if self.identity and self.beside_record:
            raise ValueError(f"option {self.name}: an identity option cannot apply beside a "
                             "record")
        if self.record and not self.identity:
            raise ValueError(f"option {self.name}: only identity options are recorded")

    @property
    def flag_text(self) -> str:
        """The flag as typed on the command line."""
        return self.flag or "--" + self.name.replace("_", "-")


# CLI groups of the study options (sweep.cli adds those of the run and orders all of them).
WHAT = "what to run"
DATA = "data"
OTHER_DATA = "other datasets (instead of --deam)"
AXES = "data axes (grid dimensions next to training key and seeds)"
TRAINING = "training (default: mer_uq's, i.e. the paper's settings)"

_OPTIONAL_TEXT = optional(text)

STUDY_OPTIONS: tuple[Option, ...] = (
    # --- what to run
    Option("methods", "all", WHAT, identity=True,
           help="all (the paper's five: seeds, mc_dropout, nll, mse, kld), all+ (adds "
                "nll_exact, kld_exact, beta_nll, rater_nll) or a comma list",
           record=(RecordKey("methods", list_of(one_of(method_names, "method"), distinct=True),
                             required=True),)),
    Option("seeds", (15,), WHAT, type=int, nargs="+", identity=True,
           help="N (seeds 0..N-1) or an explicit list of seeds, e.g. --seeds 3 7 11",
           record=(RecordKey("seeds", list_of(integer(0), distinct=True), required=True),)),
    Option("seeds_per_trial", None, WHAT, type=positive_int, identity=True,
           help="seeds trained as ONE vectorised model per trial (default: all seeds of a "
                "training key in one trial)",
           record=(RecordKey("seeds_per_trial", optional(integer(1))),)),
    Option("config", None, WHAT, type=Path, identity=True,
           help="best_config.json of an Optuna search: use its hyperparameters"),
    # --- data
    Option("features", None, DATA, type=Path, identity=True,
           help="feature Parquet (song_id + vector column); default: the bundled DEAM "
                "openSMILE song-level features. A comma list A,B: a feature axis (one grid "
                "cell per table and column)",
           record=(RecordKey("features", _OPTIONAL_TEXT, required=True),)),
    Option("feature_column", None, DATA, identity=True,
           help="vector column of --features (default: the table's own default); a comma "
                "list c1,c2: a feature axis",
           record=(RecordKey("feature_column", _OPTIONAL_TEXT, required=True),)),
    Option("deam", None, DATA, type=Path, identity=True,
           help="DEAM folder (default: the bundled annotations)",
           record=(RecordKey("deam_dir", _OPTIONAL_TEXT, required=True),)),
    Option("split_file", None, DATA, type=Path, identity=True,
           help="train/valid/test split CSV (default: the bundled split)",
           record=(RecordKey("split_file", _OPTIONAL_TEXT, required=True),)),
    Option("allow_missing_features", False, DATA, action="store_true", identity=True,
           help="run on the songs --features covers; the others leave every split (counts "
                "printed and recorded in sweep.json). Default: refuse",
           record=(RecordKey("allow_missing_features", boolean, default=False),)),
    Option("include_2015", False, DATA, action="store_true", identity=True,
           help="add DEAM's 58 songs of 2015 (other raters and a different rating setup; "
                "the paper uses 2013-2014 only)",
           record=(RecordKey("include_2015", boolean, required=True, default=False),)),
    Option("keep_swap", False, DATA, action="store_true", identity=True,
           help="keep the raw (swapped) 2013 valence/arousal columns",
           record=(RecordKey("fix_swap", boolean, required=True, default=True),)),
    # --- other datasets (instead of --deam)
    Option("ratings", None, OTHER_DATA, type=Path, identity=True,
           help="generic per-rater table, CSV or Parquet: song_id, rater, valence, arousal "
                "(docs/data.md); needs --features",
           record=(RecordKey("ratings", _OPTIONAL_TEXT),)),
    Option("scale", None, OTHER_DATA, type=Path, identity=True,
           help="JSON {min, max, neutral} of the rating scale (default: scale.json beside "
                "--ratings)",
           record=(RecordKey("scale", optional(scale)),)),
    Option("scale_min", None, OTHER_DATA, type=float, identity=True),
    Option("scale_max", None, OTHER_DATA, type=float, identity=True),
    Option("scale_neutral", None, OTHER_DATA, type=float, identity=True,
           help="default: midway between --scale-min and --scale-max"),
    Option("songs", None, OTHER_DATA, type=Path, identity=True,
           help="song table for --ratings: song_id, genre[, year] (genre stratifies the "
                "split)",
           record=(RecordKey("songs", _OPTIONAL_TEXT),)),
    Option("synthetic", False, OTHER_DATA, action="store_true", identity=True,
           help="mer_uq.synthetic data with a KNOWN per-song SD (positive control)",
           record=(RecordKey("synthetic", optional(json_object)),)),
    Option("synthetic_raters", 10, OTHER_DATA, type=positive_int, identity=True,
           help="raters per synthetic song"),
    # --- data axes
    Option("raters", None, AXES, identity=True,
           help="raters per song for training/validation targets, e.g. 2,3,5,10 (all = every "
                "rater); test songs are scored against all raters and against the same k",
           record=(RecordKey("raters", optional(list_of(raters_item, distinct=True))),)),
    Option("train_fraction", None, AXES, identity=True,
           help="genre-stratified shares of the training split, e.g. 0.25,0.5,1",
           record=(RecordKey("train_fractions",
                             optional(list_of(number(0.0, 1.0), distinct=True))),)),
    Option("subsample_seed", 0, AXES, type=non_negative_int, identity=True,
           help="seed of the rater and training-song draws (part of the trial id)",
           record=(RecordKey("subsample_seed", integer(0), default=0),)),
    # --- training: mer_uq.config's settings, mer_uq's defaults unless given
    Option("epochs", None, TRAINING, type=positive_int, identity=True, knob="train"),
    Option("steps_per_epoch", None, TRAINING, type=positive_int, identity=True, knob="train"),
    Option("batch_size", None, TRAINING, type=positive_int, identity=True, knob="train"),
    Option("lr", None, TRAINING, type=float, identity=True, knob="train"),
    Option("patience", None, TRAINING, type=positive_int, identity=True, knob="train",
           help="epochs without validation improvement before the lr drops"),
    Option("early_stopping_patience", None, TRAINING, type=positive_int, identity=True,
           knob="train", help="epochs without validation improvement before a seed stops"),
    Option("mc_passes", None, TRAINING, type=positive_int, identity=True,
           help="MC-dropout forward passes at inference",
           record=(RecordKey("mc_passes", integer(1), required=True),)),
    Option("hidden_width", None, TRAINING, type=positive_int, identity=True, knob="model"),
    Option("dropout", None, TRAINING, type=float, identity=True, knob="model"),
)


def recorded_keys() -> dict[str, RecordKey]:
    """Every sweep.json key a single study option decides, in declaration order."""
    keys: dict[str, RecordKey] = {}
    for option in STUDY_OPTIONS:
        for key in option.record:
            if key.name in keys:
                raise ValueError(f"sweep.json key {key.name!r} is declared by two options")
            keys[key.name] = key
    return keys
