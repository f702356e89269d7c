"""The study: what a sweep trains, resolved from the flags or from sweep.json, and its record.

Three steps, in this order in the file: the trial plan (methods and seeds -> one trial per
training key and seed chunk, with the data axes as further grid dimensions), the dataset
and data-axes options as sweep.json keys, and the resolved ``Study`` that sweep.json
records, so a resumed sweep continues the very same plan. Nothing here imports Ray, torch
or the data: every user error in the request fails in a second.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_uq.methods import EXTRA_METHODS, METHODS, PAPER_METHODS, training_groups
from mer_uq.study_options import STUDY_OPTIONS
from mer_uq.sweep_folder import PLANNED_TRIALS_KEY, BestConfigKey, now_iso, trial_stem
from mer_uq.sweep_record import SETTING_DEFAULTS
from sweep.cli import SweepOptions

# ======================================================================================
# The sweep's plan: which models get trained, with which seeds, in how many trials.
#
# A trial is (training key, chunk of seeds). Methods that share a training key (``seeds`` and
# ``mc_dropout`` both read the mean-only MSE model) are trained once, and the seeds of one
# chunk are trained as ONE vectorised model, so the default study (paper methods, 15 seeds,
# one chunk per key) is only four trials. The trial id is derived from the seeds alone, so a
# resumed sweep recognises the files of the trials that already finished.
# ======================================================================================

class PlanError(ValueError):
    """The requested methods or seeds do not describe a runnable sweep."""


def resolve_methods(text: str) -> tuple[str, ...]:
    """``all`` -> the paper's five; ``all+`` -> every known method; else a comma list."""
    if text == "all":
        return PAPER_METHODS
    if text == "all+":
        return (*PAPER_METHODS, *EXTRA_METHODS)
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise PlanError("--methods is empty; use all, all+ or a comma list of methods")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise PlanError(
            f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)} "
            "(or all, all+)"
        )
    return names


def resolve_seeds(values: Sequence[int]) -> tuple[int, ...]:
    """One number N -> seeds 0..N-1; several numbers -> exactly those seeds."""
    if not values:
        raise PlanError("--seeds needs a count N or a list of seeds")
    if len(values) == 1:
        count = values[0]
        if count <= 0:
            raise PlanError(f"--seeds must be a positive count, got {count}")
        return tuple(range(count))
    if any(s < 0 for s in values):
        raise PlanError(f"seeds must be >= 0, got {list(values)}")
    if len(set(values)) != len(values):
        raise PlanError(f"seeds must be distinct, got {list(values)}")
    return tuple(values)


def seeds_label(seeds: Sequence[int]) -> str:
    """Compact, file-name-safe label of a seed list: (0, 1, 2, 7) -> 'seeds0-2_7'."""
    runs: list[str] = []
    ordered = sorted(seeds)
    start = prev = ordered[0]
    for s in [*ordered[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        runs.append(f"{start}" if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return "seeds" + "_".join(runs)


@dataclass(frozen=True)
class TrialPlan:
    """One trial: train ``training`` for ``seeds`` as one model; reports ``methods``."""

    training: str
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    # a feature-axis cell (resolve_feature_sets); not hashed: a dict
    feature_set: dict[str, Any] | None = dataclasses.field(default=None, hash=False)

    @property
    def trial_id(self) -> str:
        return seeds_label(self.seeds) + feature_suffix(self.feature_set)

    @property
    def file_stem(self) -> str:
        """``<training>__<trial-id>``, the contract's trial file name without suffix."""
        return trial_stem(self.training, self.trial_id)

    def to_config(self) -> dict[str, Any]:
        """The plan as the trial sees it in its Tune config (plain JSON types)."""
        config = {
            "training": self.training,
            "seeds": list(self.seeds),
            "methods": list(self.methods),
            "trial_id": self.trial_id,
            "file_stem": self.file_stem,
        }
        if self.feature_set is not None:  # absent without the axis: plans as before
            config["feature_set"] = dict(self.feature_set)
        return config


def chunk_seeds(seeds: Sequence[int], per_trial: int | None) -> list[tuple[int, ...]]:
    """Consecutive chunks of ``per_trial`` seeds; ``None`` -> one chunk of all seeds."""
    if per_trial is None:
        return [tuple(seeds)]
    if per_trial <= 0:
        raise PlanError(f"--seeds-per-trial must be positive, got {per_trial}")
    return [tuple(seeds[i : i + per_trial]) for i in range(0, len(seeds), per_trial)]


def plan_trials(
    methods: Sequence[str], seeds: Sequence[int], seeds_per_trial: int | None
) -> list[TrialPlan]:
    """The trial grid: training key x seed chunk, each key once however many methods use it."""
    groups = training_groups(tuple(methods))
    return [
        TrialPlan(training=training, seeds=chunk, methods=tuple(reported))
        for training, reported in groups.items()
        for chunk in chunk_seeds(seeds, seeds_per_trial)
    ]


# Mean epochs a member trains (early stopping) per training key, measured at the paper's
# settings on the bundled features (15 seeds); `mean` counts ~4 epochs more for its 100
# MC-dropout passes. Only the launch order depends on these numbers, never a result.
TYPICAL_EPOCHS: dict[str, float] = {
    "mean": 22.0, "nll": 28.8, "mse": 20.3, "kld": 33.4,
    "nll_exact": 41.9, "kld_exact": 18.9, "beta_nll": 30.5, "rater_nll": 26.3,
    "student_t": 31.2, "evidential": 29.5, "evidential_mean": 24.5, "mixture": 26.3,
    "quantile": 25.3,
    "swag": 42.0,  # the mean model's epochs, then mer_uq.swag.SWAG_EPOCHS (20) more
}  # fmt: skip


def longest_first(plans: Sequence[TrialPlan]) -> list[TrialPlan]:
    """The plans in launch order, the most expected work (seeds x typical epochs) first.

    Trials start in this order as slots free up; on few slots the trial started last
    decides the wall time, so it should be a short one (longest-processing-time first:
    on the default study and 2 slots, kld + mse beside nll + mean instead of kld alone
    at the end). Ties keep the plan order, so the order is deterministic."""
    def work(plan: TrialPlan) -> float:
        return len(plan.seeds) * TYPICAL_EPOCHS.get(plan.training, 30.0)

    return sorted(plans, key=work, reverse=True)


# ---------------------------------------------------------------- data axes
# Raters per song and the training fraction are grid dimensions next to training key and
# seed chunk: every plan above is expanded into one trial per (k, fraction) cell. A sweep
# without them keeps today's plans, ids and files exactly.

ALL_RATERS = "all"


def resolve_raters(text: str | None) -> tuple[int | None, ...] | None:
    """``--raters 2,3,5,10`` (``all`` = every rater, written None) -> distinct values in
    the order given; None when the flag is absent."""
    if text is None:
        return None
    values: list[int | None] = []
    for item in (t.strip() for t in text.split(",")):
        if item == ALL_RATERS:
            values.append(None)
            continue
        try:
            k = int(item)
        except ValueError:
            raise PlanError(f"--raters {text}: {item!r} is not a count or 'all'") from None
        if k < 2:
            raise PlanError(f"--raters {text}: {k} is below 2 (one rating has no SD)")
        values.append(k)
    if not values or len(set(values)) != len(values):
        raise PlanError(f"--raters {text}: give distinct counts, e.g. 2,5,10 or 2,5,all")
    return tuple(values)


def resolve_fractions(text: str | None) -> tuple[float, ...] | None:
    """``--train-fraction 0.25,0.5,1`` -> distinct shares in (0, 1]; None when absent."""
    if text is None:
        return None
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise PlanError(f"--train-fraction {text}: not a comma list of numbers") from None
    bad = [v for v in values if not 0.0 < v <= 1.0]
    if bad or len(set(values)) != len(values):
        raise PlanError(f"--train-fraction {text}: give distinct shares in (0, 1], e.g. "
                        "0.25,0.5,1")
    return values


def axes_label(raters: int | None, fraction: float, subsample_seed: int) -> str:
    """File-name-safe label of one data cell: 'k5_frac0.5_sub0' ('kall' = every rater)."""
    return f"k{ALL_RATERS if raters is None else raters}_frac{fraction:g}_sub{subsample_seed}"


@dataclass(frozen=True)
class AxesTrialPlan(TrialPlan):
    """A trial of a data-axes sweep: the plan's training key and seeds on one data cell."""

    raters: int | None = None
    train_fraction: float = 1.0
    subsample_seed: int = 0

    @property
    def trial_id(self) -> str:
        cell = axes_label(self.raters, self.train_fraction, self.subsample_seed)
        return f"{seeds_label(self.seeds)}_{cell}{feature_suffix(self.feature_set)}"

    def data_record(self) -> dict[str, Any]:
        """The cell as mer_uq.data.subsample.DataAxes.to_dict spells it."""
        return {"raters": self.raters, "train_fraction": self.train_fraction,
                "subsample_seed": self.subsample_seed}

    def to_config(self) -> dict[str, Any]:
        return {**super().to_config(), "data": self.data_record()}


def with_data_axes(plans: Sequence[TrialPlan], raters: Sequence[int | None] | None,
                   fractions: Sequence[float] | None, subsample_seed: int = 0
                   ) -> list[TrialPlan]:
    """Each plan once per (k, fraction) cell; the plans unchanged when neither axis is
    given. A missing axis has one value: all raters, or the whole training split."""
    if raters is None and fractions is None:
        return list(plans)
    return [
        AxesTrialPlan(training=p.training, seeds=p.seeds, methods=p.methods,
                      feature_set=p.feature_set, raters=k, train_fraction=float(f),
                      subsample_seed=subsample_seed)
        for p in plans
        for k in (raters if raters is not None else (None,))
        for f in (fractions if fractions is not None else (1.0,))
    ]


# ======================================================================================
# The data flags of ``python -m sweep.run`` -> the keys sweep.json records for them.
#
# Which dataset (a DEAM folder, a generic per-rater table with its scale, synthetic data)
# and which data axes (raters per song, training fraction, their seed). The record is what
# mer_uq.sources rebuilds the dataset from, in the driver and again in the analysis, so the
# scale is stored resolved (min, max, neutral), not as the path of a JSON that may move.
# Checked here, before anything heavy is imported: a conflicting or malformed flag is one
# line and exit 2.
# ======================================================================================

def _resolved(path: Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def data_source_record(options: SweepOptions) -> dict[str, Any]:
    """ratings, scale, songs, synthetic: what replaces --deam (all None: DEAM)."""
    scale_flags = (options.scale, options.scale_min, options.scale_max, options.scale_neutral)
    record: dict[str, Any] = {"ratings": None, "scale": None, "songs": None, "synthetic": None}
    if options.synthetic:
        given = (("--deam", options.deam), ("--ratings", options.ratings),
                 ("--features", options.features), ("--split-file", options.split_file))
        clashing = [flag for flag, value in given if value is not None]
        if clashing:
            raise PlanError(f"--synthetic brings its own songs, split and features; drop "
                            f"{', '.join(clashing)}")
        import inspect

        from mer_uq.synthetic import make_synthetic

        defaults = {name: param.default for name, param in
                    inspect.signature(make_synthetic).parameters.items()}
        # every setting recorded, so a later change of a default cannot change the data
        record["synthetic"] = {**defaults, "n_raters": options.synthetic_raters}
        return record
    if options.ratings is None:
        if options.songs is not None or any(v is not None for v in scale_flags):
            raise PlanError("--songs and --scale* describe a --ratings table; give --ratings")
        return record
    if options.deam is not None:
        raise PlanError("--ratings replaces --deam; give one of them")
    for flag, path in (("--ratings", options.ratings), ("--songs", options.songs),
                       ("--scale", options.scale)):
        if path is not None and not Path(path).is_file():
            raise PlanError(f"{flag} {path}: no such file")
    from mer_uq.data.errors import DeamDataError
    from mer_uq.data.generic import resolve_scale

    try:
        scale = resolve_scale(options.ratings, options.scale, options.scale_min,
                              options.scale_max, options.scale_neutral)
    except DeamDataError as err:
        raise PlanError(str(err)) from err
    record.update(ratings=_resolved(options.ratings), scale=scale.to_dict(),
                  songs=_resolved(options.songs))
    return record


def data_axes_record(options: SweepOptions) -> dict[str, Any]:
    """raters, train_fractions (None: the axis is not used), subsample_seed."""
    if options.search and (options.raters is not None or options.train_fraction is not None):
        raise PlanError("--raters and --train-fraction are axes of the seed sweep; run "
                        "--search without them (it tunes on all the data)")
    return {"raters": resolve_raters(options.raters),
            "train_fractions": resolve_fractions(options.train_fraction),
            "subsample_seed": int(options.subsample_seed)}


# ---------------------------------------------------------------- the feature axis
# Several feature tables (--features A.parquet,B.parquet) and/or several columns of them
# (--feature-column c1,c2): every (table, column) pair is one feature set, a grid dimension
# next to the training key, the seed chunk and the data axes. One table and one column is
# not an axis: the plans, trial ids, file names and sweep.json stay exactly as before.

FEATURE_SETS_KEY = "feature_sets"
BUNDLED_FEATURES_LABEL = "opensmile"


def _label_text(text: str) -> str:
    """File-name-safe: letters, digits, '.', '-'; everything else '-'."""
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in text).strip("-") or "x"


def feature_suffix(feature_set: dict[str, Any] | None) -> str:
    """The trial-id part of a feature-axis cell ('' without the axis)."""
    return "" if feature_set is None else f"_feat-{feature_set['label']}"


def _split_list(text: str | None) -> list[str | None]:
    if text is None:
        return [None]
    items = [t.strip() for t in str(text).split(",")]
    if any(not t for t in items) or len(set(items)) != len(items):
        raise PlanError(f"{text!r}: give distinct, non-empty comma-separated items")
    return list(items)


def resolve_feature_sets(features: str | None, columns: str | None
                         ) -> tuple[dict[str, Any], ...]:
    """Every (table, column) pair as {"label", "features", "feature_column"}, tables in the
    order given, then columns; the first is the reference set the report's main tables
    show. Labels come from the table's file stem and the column, made unique."""
    sets = []
    for table in _split_list(features):
        for column in _split_list(columns):
            stem = Path(table).stem if table else BUNDLED_FEATURES_LABEL
            label = _label_text(stem if column is None else f"{stem}-{column}")
            sets.append({"label": label, "features": _path_text(Path(table)) if table else None,
                         "feature_column": column})
    labels = [s["label"] for s in sets]
    for i, item in enumerate(sets):
        if labels.count(item["label"]) > 1:
            item["label"] = f"{item['label']}-{i}"
    return tuple(sets)


def feature_sets_record(options: SweepOptions) -> dict[str, Any]:
    """features and feature_column (the reference set) and, with the axis, feature_sets."""
    sets = resolve_feature_sets(None if options.features is None else str(options.features),
                                options.feature_column)
    first = sets[0]
    if len(sets) == 1:
        return {"features": first["features"], "feature_column": first["feature_column"]}
    if options.search:
        raise PlanError("--search tunes on one feature set; give one --features table and "
                        "one --feature-column")
    if options.allow_missing_features:
        raise PlanError("--allow-missing-features with several feature sets: the sets could "
                        "keep different songs, and their comparison needs the same test "
                        "songs; cover every song or run one feature set per sweep")
    if options.synthetic:
        raise PlanError("--synthetic brings its own features; drop the feature axis")
    for item in sets:
        if item["features"] is not None and not Path(item["features"]).is_file():
            raise PlanError(f"--features {item['features']}: no such file")
    return {"features": first["features"], "feature_column": first["feature_column"],
            "feature_sets": sets}


def with_feature_sets(plans: Sequence[TrialPlan], feature_sets: Sequence[dict[str, Any]] | None
                      ) -> list[TrialPlan]:
    """Each plan once per feature set; the plans unchanged without the axis."""
    if feature_sets is None:
        return list(plans)
    return [dataclasses.replace(p, feature_set=dict(f)) for p in plans for f in feature_sets]


# ======================================================================================
# The resolved study: exactly what a sweep trains, independent of how it was asked for.
#
# Built from the CLI options for a new sweep, or from sweep.json for ``--resume`` and
# ``--from``; it is also what sweep.json records, so a resumed or repeated sweep runs the
# very same plan.
# ======================================================================================

class StudyConfigError(ValueError):
    """A hyperparameter or configuration file that mer_uq does not accept."""


def _frozen(value: Any) -> Any:
    """A record value as the study holds it: JSON lists as tuples (hashable, as planned)."""
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Study:
    """The study's settings, keyed as sweep.json records them (mer_uq.sweep_record's
    SETTING_DEFAULTS: the keys the study options declare, plus model, train and
    feature_sets), each readable as an attribute: ``study.seeds``, ``study.model``.

    One mapping instead of one field per key is what lets a new study option be one
    declaration (mer_uq.study_options): its key is recorded, resumed and repeated here
    without touching this class."""

    settings: Mapping[str, Any]

    def __post_init__(self) -> None:
        """Every setting, held as sweep.json holds it: equal however the study was built."""
        unknown = sorted(set(self.settings) - set(SETTING_DEFAULTS))
        if unknown:
            raise ValueError(f"a study has no setting(s) {unknown}")
        settings = {name: self.settings.get(name, default)
                    for name, default in SETTING_DEFAULTS.items()}
        object.__setattr__(self, "settings", _json_value(settings))

    def __getattr__(self, name: str) -> Any:
        settings = self.__dict__.get("settings")
        if settings is None or name not in SETTING_DEFAULTS:
            raise AttributeError(f"{type(self).__name__} has no setting {name!r}")
        return _frozen(settings[name])

    def trials(self) -> list[TrialPlan]:
        plans = with_feature_sets(plan_trials(self.methods, self.seeds, self.seeds_per_trial),
                                  self.feature_sets)
        return with_data_axes(plans, self.raters, self.train_fractions, self.subsample_seed)

    def to_record(self) -> dict[str, Any]:
        """sweep.json's content (docs/architecture.md lists the required keys): the
        settings, then the training keys, the planned trial file stems and the time."""
        record = _json_value(self.settings)  # a copy: the caller may change it
        if record[FEATURE_SETS_KEY] is None:  # only with the axis: a record as before
            del record[FEATURE_SETS_KEY]
        plans = self.trials()
        return {**record, "trainings": sorted({t.training for t in plans}),
                PLANNED_TRIALS_KEY: [t.file_stem for t in plans], "created": now_iso()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Study:
        """The study a (validated) sweep.json records; a key an older record lacks takes
        its default."""
        return cls({name: record[name] for name in SETTING_DEFAULTS if name in record})


def _json_value(value: Any) -> Any:
    """A setting as sweep.json holds it: tuples as lists, dicts copied."""
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(Path(value).resolve())
    return value


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
        return dict(record[BestConfigKey.MODEL])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise StudyConfigError(
            f"--config {path} is not a best_config.json written by --search optuna ({err})"
        ) from err


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def study_from_options(options: SweepOptions) -> Study:
    """Resolve methods, seeds and hyperparameters (explicit flags beat --config).

    A study option that decides its own sweep.json key is recorded as given (a path as its
    absolute text), unless resolved below: methods, seeds and the settings here, the data
    source, the data axes and the feature axis in the functions above. The settings come
    from mer_uq.config, which needs no torch: the driver never trains."""
    from mer_uq.config import DEFAULT_MC_PASSES, FCNConfig, TrainConfig

    model_overrides = read_best_config(options.config) if options.config else {}
    model_overrides.update(options.model_overrides)
    as_given = {key.name: _json_value(getattr(options, option.name))
                for option in STUDY_OPTIONS for key in option.record}
    return Study({
        **as_given,
        "methods": resolve_methods(options.methods),
        "seeds": resolve_seeds(options.seeds),
        "model": _with_overrides(FCNConfig, model_overrides, "the model (FCNConfig)"),
        "train": _with_overrides(TrainConfig, options.train_overrides, "training (TrainConfig)"),
        "mc_passes": options.mc_passes if options.mc_passes is not None else DEFAULT_MC_PASSES,
        "deam_dir": _path_text(options.deam),
        "split_file": _path_text(options.split_file),
        "fix_swap": not options.keep_swap,
        **data_source_record(options),
        **data_axes_record(options),
        **feature_sets_record(options),
    })
