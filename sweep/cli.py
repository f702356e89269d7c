"""Command line of ``python -m sweep.run``: flags -> a validated SweepOptions.

Parsing is kept apart from running so that tests (and notebooks) can build the options the
CLI would build and call the sweep in-process, sharing one Ray instance.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from analysis.write.wandb_summary import DEFAULT_MODE, DEFAULT_PROJECT, WANDB_MODES

# Training knobs, named as the fields of mer_uq's FCNConfig and TrainConfig. A knob left
# off the command line keeps mer_uq's default (the paper's training settings).
MODEL_KNOBS: tuple[str, ...] = ("hidden_width", "dropout")
TRAIN_KNOBS: tuple[str, ...] = (
    "epochs", "steps_per_epoch", "batch_size", "lr", "patience", "early_stopping_patience",
)


@dataclass
class SweepOptions:
    """Everything one sweep run needs; every field has the CLI's default."""

    methods: str = "all"
    seeds: tuple[int, ...] = (15,)
    seeds_per_trial: int | None = None
    features: Path | None = None
    feature_column: str | None = None
    deam: Path | None = None
    split_file: Path | None = None
    keep_swap: bool = False
    allow_missing_features: bool = False
    out: Path | None = None
    resume: Path | None = None
    address: str | None = None
    storage_path: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 2
    model_overrides: dict[str, float | int] = field(default_factory=dict)
    train_overrides: dict[str, float | int] = field(default_factory=dict)
    mc_passes: int | None = None
    config: Path | None = None
    search: str | None = None
    search_method: str = "nll"
    num_samples: int = 20
    wandb: bool = False
    wandb_project: str = DEFAULT_PROJECT
    wandb_mode: str = DEFAULT_MODE
    report: bool = True
    # Other datasets and the data axes (docs/sweep.md, "Data axes")
    ratings: Path | None = None
    scale: Path | None = None
    scale_min: float | None = None
    scale_max: float | None = None
    scale_neutral: float | None = None
    songs: Path | None = None
    synthetic: bool = False
    synthetic_raters: int = 10
    raters: str | None = None
    train_fraction: str | None = None
    subsample_seed: int = 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is ONE line (argparse prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m sweep.run",
        description=(
            "Train the uncertainty methods over many seeds on Ray Tune and print the paper's "
            "Table 2 (predicted mean) and Table 3 (predicted SD). Default: the paper's five "
            "methods x 15 seeds on the bundled DEAM openSMILE features, on this machine."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    what = p.add_argument_group("what to run")
    what.add_argument("--methods", default="all",
                      help="all (the paper's five: seeds, mc_dropout, nll, mse, kld), all+ "
                           "(adds nll_exact, kld_exact, beta_nll, rater_nll) or a comma list")
    what.add_argument("--seeds", type=int, nargs="+", default=[15],
                      help="N (seeds 0..N-1) or an explicit list of seeds, e.g. --seeds 3 7 11")
    what.add_argument("--seeds-per-trial", type=_positive_int, default=None,
                      help="seeds trained as ONE vectorised model per trial (default: all "
                           "seeds of a training key in one trial)")
    what.add_argument("--config", type=Path, default=None,
                      help="best_config.json of an Optuna search: use its hyperparameters")
    data = p.add_argument_group("data")
    data.add_argument("--features", type=Path, default=None,
                      help="feature Parquet (song_id + vector column); default: the bundled "
                           "DEAM openSMILE song-level features. A comma list A,B: a feature "
                           "axis (one grid cell per table and column)")
    data.add_argument("--feature-column", default=None,
                      help="vector column of --features (default: the table's own default); "
                           "a comma list c1,c2: a feature axis")
    data.add_argument("--deam", type=Path, default=None,
                      help="DEAM folder (default: the bundled annotations)")
    data.add_argument("--split-file", type=Path, default=None,
                      help="train/valid/test split CSV (default: the bundled split)")
    data.add_argument("--allow-missing-features", action="store_true",
                      help="run on the songs --features covers; the others leave every split "
                           "(counts printed and recorded in sweep.json). Default: refuse")
    data.add_argument("--keep-swap", action="store_true",
                      help="keep the raw (swapped) 2013 valence/arousal columns")
    _add_data_axes_flags(p)
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, default=None,
                     help="sweep folder (default: a new runs/<UTC timestamp>)")
    out.add_argument("--resume", type=Path, default=None,
                     help="continue the sweep in this folder: its sweep.json fixes methods, "
                          "seeds and settings (those flags are ignored); finished trials are "
                          "not rerun")
    out.add_argument("--no-report", dest="report", action="store_false",
                     help="skip the analysis report at the end")
    ray_group = p.add_argument_group("Ray")
    ray_group.add_argument("--address", default=None,
                           help="Ray cluster to join: auto or HOST:PORT (default: start a "
                                "local single-node Ray)")
    ray_group.add_argument("--storage-path", default=None,
                           help="Ray Tune storage; on a multi-node cluster a path every node "
                                "sees (NFS) or a bucket (s3://...). Default: DIR/tune")
    ray_group.add_argument("--cpus-per-trial", type=float, default=1.0)
    ray_group.add_argument("--gpus-per-trial", type=float, default=0.0,
                           help="GPUs per trial; fractions 1/k (0.5, 0.25, 0.2, 0.1) share a GPU")
    ray_group.add_argument("--max-concurrent", type=_positive_int, default=None,
                           help="most trials at once (default: as many as resources allow)")
    ray_group.add_argument("--max-failures", type=_non_negative_int, default=2,
                           help="retries of a trial whose worker fails")
    train = p.add_argument_group("training (default: mer_uq's, i.e. the paper's settings)")
    train.add_argument("--epochs", type=_positive_int, default=None)
    train.add_argument("--steps-per-epoch", type=_positive_int, default=None)
    train.add_argument("--batch-size", type=_positive_int, default=None)
    train.add_argument("--lr", type=float, default=None)
    train.add_argument("--patience", type=_positive_int, default=None,
                       help="epochs without validation improvement before the lr drops")
    train.add_argument("--early-stopping-patience", type=_positive_int, default=None,
                       help="epochs without validation improvement before a seed stops")
    train.add_argument("--mc-passes", type=_positive_int, default=None,
                       help="MC-dropout forward passes at inference")
    train.add_argument("--hidden-width", type=_positive_int, default=None)
    train.add_argument("--dropout", type=float, default=None)
    search = p.add_argument_group("hyperparameter search")
    search.add_argument("--search", choices=["optuna"], default=None,
                        help="Optuna over dropout (0.1..0.7) and hidden width (64..512) on "
                             "VALIDATION loss; writes DIR/search/best_config.json")
    search.add_argument("--search-method", default="nll", help="method whose model is searched")
    search.add_argument("--num-samples", type=_positive_int, default=20,
                        help="Optuna trials")
    logging = p.add_argument_group("W&B")
    logging.add_argument("--wandb", action="store_true", help="one W&B run per trial")
    logging.add_argument("--wandb-project", default=DEFAULT_PROJECT)
    logging.add_argument("--wandb-mode", choices=WANDB_MODES, default=DEFAULT_MODE,
                         help="offline needs no key or network; `wandb sync` uploads later")
    return p


def _add_data_axes_flags(p: argparse.ArgumentParser) -> None:
    """A generic per-rater dataset or synthetic data instead of DEAM, and the data axes."""
    other = p.add_argument_group("other datasets (instead of --deam)")
    other.add_argument("--ratings", type=Path, default=None,
                       help="generic per-rater table, CSV or Parquet: song_id, rater, valence, "
                            "arousal (docs/data.md); needs --features")
    other.add_argument("--scale", type=Path, default=None,
                       help="JSON {min, max, neutral} of the rating scale (default: scale.json "
                            "beside --ratings)")
    other.add_argument("--scale-min", type=float, default=None)
    other.add_argument("--scale-max", type=float, default=None)
    other.add_argument("--scale-neutral", type=float, default=None,
                       help="default: midway between --scale-min and --scale-max")
    other.add_argument("--songs", type=Path, default=None,
                       help="song table for --ratings: song_id, genre[, year] (genre "
                            "stratifies the split)")
    other.add_argument("--synthetic", action="store_true",
                       help="mer_uq.synthetic data with a KNOWN per-song SD (positive control)")
    other.add_argument("--synthetic-raters", type=_positive_int, default=10,
                       help="raters per synthetic song")
    axes = p.add_argument_group("data axes (grid dimensions next to training key and seeds)")
    axes.add_argument("--raters", default=None,
                      help="raters per song for training/validation targets, e.g. 2,3,5,10 "
                           "(all = every rater); test songs are scored against all raters "
                           "and against the same k")
    axes.add_argument("--train-fraction", default=None,
                      help="genre-stratified shares of the training split, e.g. 0.25,0.5,1")
    axes.add_argument("--subsample-seed", type=_non_negative_int, default=0,
                      help="seed of the rater and training-song draws (part of the trial id)")


def parse_options(argv: Sequence[str] | None = None) -> SweepOptions:
    args = build_parser().parse_args(argv)
    return SweepOptions(
        methods=args.methods,
        seeds=tuple(args.seeds),
        seeds_per_trial=args.seeds_per_trial,
        features=args.features,
        feature_column=args.feature_column,
        deam=args.deam,
        split_file=args.split_file,
        keep_swap=args.keep_swap,
        allow_missing_features=args.allow_missing_features,
        out=args.out,
        resume=args.resume,
        address=args.address,
        storage_path=args.storage_path,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        max_failures=args.max_failures,
        model_overrides={k: getattr(args, k) for k in MODEL_KNOBS if getattr(args, k) is not None},
        train_overrides={k: getattr(args, k) for k in TRAIN_KNOBS if getattr(args, k) is not None},
        mc_passes=args.mc_passes,
        config=args.config,
        search=args.search,
        search_method=args.search_method,
        num_samples=args.num_samples,
        wandb=args.wandb,
        wandb_project=args.wandb_project,
        wandb_mode=args.wandb_mode,
        report=args.report,
        ratings=args.ratings,
        scale=args.scale,
        scale_min=args.scale_min,
        scale_max=args.scale_max,
        scale_neutral=args.scale_neutral,
        songs=args.songs,
        synthetic=args.synthetic,
        synthetic_raters=args.synthetic_raters,
        raters=args.raters,
        train_fraction=args.train_fraction,
        subsample_seed=args.subsample_seed,
    )
