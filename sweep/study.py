"""The resolved study: exactly what a sweep trains, independent of how it was asked for.

Built from the CLI options for a new sweep, or from sweep.json for ``--resume``; it is
also what sweep.json records, so a resumed sweep continues the very same plan.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_uq.sweep_folder import PLANNED_TRIALS_KEY, now_iso
from sweep.cli import SweepOptions
from sweep.data_options import data_axes_record, data_source_record
from sweep.grid import TrialPlan, plan_trials, resolve_methods, resolve_seeds, with_data_axes


class StudyConfigError(ValueError):
    """A hyperparameter or configuration file that mer_uq does not accept."""


@dataclass(frozen=True)
class Study:
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    seeds_per_trial: int | None
    model: dict[str, Any]
    train: dict[str, Any]
    mc_passes: int
    deam_dir: str | None
    split_file: str | None
    fix_swap: bool
    features: str | None
    feature_column: str | None
    include_2015: bool = False
    allow_missing_features: bool = False
    # Other datasets and the data axes (sweep.data_options; None: DEAM, no axes)
    ratings: str | None = None
    scale: dict[str, float] | None = None
    songs: str | None = None
    synthetic: dict[str, Any] | None = None
    raters: tuple[int | None, ...] | None = None
    train_fractions: tuple[float, ...] | None = None
    subsample_seed: int = 0

    def trials(self) -> list[TrialPlan]:
        plans = plan_trials(self.methods, self.seeds, self.seeds_per_trial)
        return with_data_axes(plans, self.raters, self.train_fractions, self.subsample_seed)

    def to_record(self) -> dict[str, Any]:
        """sweep.json's content (docs/architecture.md lists the required keys)."""
        return {
            "deam_dir": self.deam_dir,
            "split_file": self.split_file,
            "fix_swap": self.fix_swap,
            "include_2015": self.include_2015,
            "features": self.features,
            "feature_column": self.feature_column,
            "allow_missing_features": self.allow_missing_features,
            "methods": list(self.methods),
            "trainings": sorted({t.training for t in self.trials()}),
            "seeds": list(self.seeds),
            "seeds_per_trial": self.seeds_per_trial,
            "model": self.model,
            "train": self.train,
            "mc_passes": self.mc_passes,
            PLANNED_TRIALS_KEY: [t.file_stem for t in self.trials()],
            "created": now_iso(),
            "ratings": self.ratings,
            "scale": self.scale,
            "songs": self.songs,
            "synthetic": self.synthetic,
            "raters": None if self.raters is None else list(self.raters),
            "train_fractions": None if self.train_fractions is None else list(self.train_fractions),
            "subsample_seed": self.subsample_seed,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Study:
        return cls(
            methods=tuple(record["methods"]),
            seeds=tuple(int(s) for s in record["seeds"]),
            seeds_per_trial=record.get("seeds_per_trial"),
            model=dict(record["model"]),
            train=dict(record["train"]),
            mc_passes=int(record["mc_passes"]),
            deam_dir=record["deam_dir"],
            split_file=record["split_file"],
            fix_swap=bool(record["fix_swap"]),
            features=record["features"],
            feature_column=record["feature_column"],
            include_2015=bool(record["include_2015"]),
            allow_missing_features=bool(record.get("allow_missing_features", False)),
            ratings=record.get("ratings"),
            scale=record.get("scale"),
            songs=record.get("songs"),
            synthetic=record.get("synthetic"),
            raters=None if record.get("raters") is None else tuple(record["raters"]),
            train_fractions=(None if record.get("train_fractions") is None
                             else tuple(float(f) for f in record["train_fractions"])),
            subsample_seed=int(record.get("subsample_seed", 0)),
        )


def _with_overrides(config_cls: type, overrides: dict[str, Any], what: str) -> dict[str, Any]:
    """mer_uq's defaults for ``config_cls`` with ``overrides`` applied, checked by the
    dataclass itself (its own validation runs on construction)."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise StudyConfigError(f"{what} has no setting(s) {unknown}; known: {sorted(known)}")
    try:
        return dataclasses.asdict(config_cls(**{**dataclasses.asdict(config_cls()), **overrides}))
    except (TypeError, ValueError) as err:
        raise StudyConfigError(f"invalid {what} setting: {err}") from err


def read_best_config(path: Path) -> dict[str, Any]:
    """The model hyperparameters of an Optuna search's best_config.json."""
    try:
        record = json.loads(Path(path).read_text())
        return dict(record["model"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise StudyConfigError(
            f"--config {path} is not a best_config.json written by --search optuna ({err})"
        ) from err


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def study_from_options(options: SweepOptions) -> Study:
    """Resolve methods, seeds and hyperparameters (explicit flags beat --config).

    The settings come from mer_uq.config, which needs no torch: the driver never trains."""
    from mer_uq.config import DEFAULT_MC_PASSES, FCNConfig, TrainConfig

    model_overrides = read_best_config(options.config) if options.config else {}
    model_overrides.update(options.model_overrides)
    return Study(
        methods=resolve_methods(options.methods),
        seeds=resolve_seeds(options.seeds),
        seeds_per_trial=options.seeds_per_trial,
        model=_with_overrides(FCNConfig, model_overrides, "the model (FCNConfig)"),
        train=_with_overrides(TrainConfig, options.train_overrides, "training (TrainConfig)"),
        mc_passes=options.mc_passes if options.mc_passes is not None else DEFAULT_MC_PASSES,
        deam_dir=_path_text(options.deam),
        split_file=_path_text(options.split_file),
        fix_swap=not options.keep_swap,
        features=_path_text(options.features),
        feature_column=options.feature_column,
        allow_missing_features=options.allow_missing_features,
        **data_source_record(options),
        **data_axes_record(options),
    )
