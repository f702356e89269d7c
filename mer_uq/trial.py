"""One trial: train the seeds of one training key as one stacked model, predict every
validation and test song with each method the key reports, and score them.

This is the single call the sweep wraps (one Ray Tune trial) and the CLI runs; it knows
nothing about Ray. `on_epoch` receives each epoch's record (plain scalars), which is how
the sweep reports progress to Tune.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mer_uq.config import DEFAULT_MC_PASSES
from mer_uq.conformal_quantile import conformalise_quantiles
from mer_uq.data import DeamDataset, FeatureTable, standardise
from mer_uq.data.subsample import DataAxes, apply_axes
from mer_uq.methods import (
    Uncertainty,
    UnknownMethodError,
    method_spec,
    methods_of_training,
    training_spec,
)
from mer_uq.model import FCNConfig
from mer_uq.prediction import (
    ALEATORIC_SD,
    EPISTEMIC_SD,
    combine_seeds,
    family_frame,
    mc_dropout,
    predict,
    predict_family,
    prediction_frame,
)
from mer_uq.schema import DIMENSIONS, HP_PREFIX, TARGET_MEAN, TARGET_SD
from mer_uq.scores import score_split
from mer_uq.swag import collect_swag, swag_predict
from mer_uq.training import (
    EpochCallback,
    TrainConfig,
    TrainedStack,
    TrainingData,
    cpu_threads,
    train_stack,
)

__all__ = [
    "FCNConfig",
    "TrainConfig",
    "TrialResult",
    "TrialSpec",
    "run_trial",
    "training_targets",
]

EVAL_SPLITS = ("valid", "test")


@dataclass(frozen=True)
class TrialSpec:
    """What one trial trains: a training key, its seeds (trained as one stack), the model
    and optimisation settings, MC-dropout passes, and which of the key's methods to report
    (None: all of them)."""

    training: str
    seeds: tuple[int, ...] = (0,)
    model: FCNConfig = field(default_factory=FCNConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mc_passes: int = DEFAULT_MC_PASSES
    methods: tuple[str, ...] | None = None
    # SD over MC passes: 1 = the paper's eq. 7 (n - 1), 0 = population SD. Recorded in
    # every prediction row (hp_mc_sd_ddof), so the analysis can say which ran.
    mc_sd_ddof: int = 1
    # Data axes (k raters per song, training fraction; mer_uq.data.subsample); None: all data.
    data: DataAxes | None = None

    def __post_init__(self) -> None:
        training_spec(self.training)
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"TrialSpec.seeds must be distinct and >= 0, got {self.seeds}")
        for name in self.reported_methods:
            if method_spec(name).training != self.training:
                raise UnknownMethodError(
                    f"method {name!r} reads training {method_spec(name).training!r}, not "
                    f"{self.training!r}"
                )

    @property
    def reported_methods(self) -> tuple[str, ...]:
        return self.methods if self.methods is not None else methods_of_training(self.training)

    def hyperparameters(self) -> dict[str, Any]:
        """The hp_* columns every prediction row carries (where it ran is not one)."""
        values = {**asdict(self.model), **asdict(self.train), "mc_passes": self.mc_passes,
                  "mc_sd_ddof": self.mc_sd_ddof}
        for name in self.train.runtime_fields:
            values.pop(name)
        return {f"{HP_PREFIX}{k}": v for k, v in values.items()}


@dataclass
class TrialResult:
    """predictions: schema.PREDICTION_COLUMNS + hp_* columns, one row per (valid/test
    song, method, seed); metrics: 'val_loss' (best validation loss, mean over seeds) and
    test scores; history: one record per epoch (means over members and per seed)."""

    spec: TrialSpec
    predictions: pd.DataFrame
    metrics: dict[str, float]
    history: list[dict[str, Any]]


# ---------------------------------------------------------------- inputs


def _feature_rows(features: FeatureTable, song_ids: np.ndarray, split: str) -> np.ndarray:
    missing = np.setdiff1d(song_ids, features.song_ids)
    if missing.size:
        shown = ", ".join(str(s) for s in missing[:10])
        raise ValueError(
            f"features ({features.column!r}) lack {missing.size} {split} song(s): {shown}"
        )
    return features.rows(song_ids)


def training_targets(dataset: DeamDataset, song_ids: np.ndarray,
                     individual_ratings: bool = False) -> np.ndarray:
    """[n, 2D] targets: per-song means, then SDs. Every training reads these: the songs
    table holds exactly the mean and population SD of the song's ratings (the k drawn ones
    under the data axes), the sufficient statistics `losses.rater_nll` needs too.

    With `individual_ratings` (a family head on raters), the song's ratings follow,
    padded to the most-rated song: [n, 2D + R D + R] as `methods.rating_columns` reads."""
    table = dataset.songs.set_index("song_id")
    columns = [TARGET_MEAN[d] for d in DIMENSIONS] + [TARGET_SD[d] for d in DIMENSIONS]
    missing = np.setdiff1d(song_ids, table.index.to_numpy())
    if missing.size:
        raise ValueError(f"no targets for song(s) {missing[:10].tolist()}")
    targets = table.loc[song_ids, columns].to_numpy(np.float64)
    bad = ~np.isfinite(targets).all(axis=1)
    if bad.any():
        raise ValueError(f"non-finite targets for song(s) {song_ids[bad][:10].tolist()}")
    if individual_ratings:
        ratings, mask = rating_matrix(dataset.ratings, song_ids)
        targets = np.concatenate(
            [targets, ratings.reshape(len(song_ids), -1), mask.astype(np.float64)], axis=1)
    return targets


def rating_matrix(ratings: pd.DataFrame, song_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each song's individual ratings, padded: values [n, R, D] (0 where padded) and
    mask [n, R], R the most ratings any of the songs has."""
    chosen = ratings[ratings["song_id"].isin(song_ids)]
    position = pd.Series(np.arange(len(song_ids)), index=np.asarray(song_ids))
    row = position.loc[chosen["song_id"].to_numpy()].to_numpy()
    counts = np.bincount(row, minlength=len(song_ids))
    if (counts == 0).any():
        missing = np.asarray(song_ids)[counts == 0][:10].tolist()
        raise ValueError(f"no individual ratings for song(s) {missing}")
    order = np.argsort(row, kind="stable")
    rank = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
    values = np.zeros((len(song_ids), int(counts.max()), len(DIMENSIONS)))
    mask = np.zeros((len(song_ids), int(counts.max())), dtype=bool)
    values[row[order], rank] = chosen[list(DIMENSIONS)].to_numpy(np.float64)[order]
    mask[row[order], rank] = True
    return values, mask


# ---------------------------------------------------------------- scoring


# ---------------------------------------------------------------- the trial


def run_trial(
    spec: TrialSpec,
    dataset: DeamDataset,
    features: FeatureTable,
    on_epoch: EpochCallback | None = None,
) -> TrialResult:
    """Train `spec.seeds` of `spec.training` as one stack; predict and score."""
    with cpu_threads(spec.train.cpu_threads):
        return _run_trial(spec, dataset, features, on_epoch)


def _run_trial(
    spec: TrialSpec,
    dataset: DeamDataset,
    features: FeatureTable,
    on_epoch: EpochCallback | None,
) -> TrialResult:
    cell = apply_axes(dataset, spec.data) if spec.data is not None else None
    if cell is not None:
        dataset = cell.trained_on
    ids = {split: dataset.song_ids(split) for split in ("train", *EVAL_SPLITS)}
    for split, song_ids in ids.items():
        if song_ids.size == 0:
            raise ValueError(f"the {split} split has no songs")
        _feature_rows(features, song_ids, split)
    standard = standardise(features, ids["train"])
    individual = training_spec(spec.training).individual_ratings
    data = TrainingData(
        x_train=standard.rows(ids["train"]),
        t_train=training_targets(dataset, ids["train"], individual),
        x_valid=standard.rows(ids["valid"]),
        t_valid=training_targets(dataset, ids["valid"], individual),
    )
    base = training_spec(spec.training).base  # swag: the mean model, then its iterates
    trained = train_stack(base, spec.seeds, data, spec.model, spec.train, on_epoch)
    predictions, timings = _predictions(spec, trained, standard, ids, data, dataset)
    metrics = _metrics(spec, trained, predictions, dataset) | timings
    if cell is not None:  # also scored against the k-rater targets; cell values as columns
        k_scores = score_split(predictions, cell.k_scored.songs, cell.k_scored.ratings, "test")
        metrics |= {f"test_k/{key.removeprefix('test/')}": v for key, v in k_scores.items()}
        metrics |= cell.facts
        predictions = predictions.assign(**cell.axes.columns())
    return TrialResult(spec, predictions, metrics, trained.history)


def _predictions(
    spec: TrialSpec,
    trained: TrainedStack,
    standard: FeatureTable,
    ids: dict[str, np.ndarray],
    data: TrainingData,
    dataset: DeamDataset,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every reported method's rows for the validation and test songs, with hp_* columns,
    and the seconds each post-hoc method added ('time/<method>_s')."""
    eval_ids = np.concatenate([ids[s] for s in EVAL_SPLITS])
    eval_splits = np.concatenate([np.full(ids[s].size, s, dtype=object) for s in EVAL_SPLITS])
    x_eval = standard.rows(eval_ids)
    if trained.model.head is not None:
        return _family_predictions(spec, trained, x_eval, eval_ids, eval_splits, dataset), {}
    mu, sigma = predict(trained.model, x_eval)
    frames = []
    timings: dict[str, float] = {}
    for name in spec.reported_methods:
        if method_spec(name).uncertainty is Uncertainty.MC_DROPOUT:
            mc_mu, mc_sd = mc_dropout(trained.model, x_eval, spec.mc_passes, spec.mc_sd_ddof)
            frames.append(prediction_frame(eval_ids, eval_splits, name, spec.seeds, mc_mu, mc_sd))
        elif method_spec(name).uncertainty is Uncertainty.LAST_LAYER_LAPLACE:
            start = time.perf_counter()
            frames.append(_laplace_frame(trained, data, x_eval, eval_ids, eval_splits, name,
                                         spec.seeds))
            timings[f"time/{name}_s"] = time.perf_counter() - start
        elif method_spec(name).uncertainty is Uncertainty.SWAG:
            start = time.perf_counter()
            moments = collect_swag(trained.model, trained.training, data, spec.train)
            swag_mu, swag_sd = swag_predict(trained.model, moments, x_eval)
            frames.append(prediction_frame(eval_ids, eval_splits, name, spec.seeds, swag_mu,
                                           swag_sd))
            timings[f"time/{name}_s"] = time.perf_counter() - start
        else:
            frames.append(prediction_frame(eval_ids, eval_splits, name, spec.seeds, mu, sigma))
    predictions = pd.concat(frames, ignore_index=True)
    for column, value in spec.hyperparameters().items():
        predictions[column] = value
    return predictions, timings


def _laplace_frame(trained: TrainedStack, data: TrainingData, x_eval: np.ndarray,
                   eval_ids: np.ndarray, eval_splits: np.ndarray, name: str,
                   seeds: tuple[int, ...]) -> pd.DataFrame:
    """Last-layer Laplace rows (mer_uq.laplace) of the trained mean-only stack, with the
    predictive SD's two parts as extra columns (<dim>_sigma_aleatoric: the noise SD,
    <dim>_sigma_epistemic: the output layer's posterior SD)."""
    from mer_uq.laplace import fit_last_layer_laplace

    fit = fit_last_layer_laplace(trained.model, data.x_train, data.t_train, data.x_valid,
                                 data.t_valid)
    mu, sigma, epistemic = fit.predict(trained.model, x_eval)
    frame = prediction_frame(eval_ids, eval_splits, name, seeds, mu, sigma)
    for j, dim in enumerate(DIMENSIONS):
        frame[ALEATORIC_SD[dim]] = np.repeat(np.sqrt(fit.noise_var[:, j]), eval_ids.size)
        frame[EPISTEMIC_SD[dim]] = epistemic[:, :, j].reshape(-1)
    return frame


def _family_predictions(
    spec: TrialSpec, trained: TrainedStack, x_eval: np.ndarray, eval_ids: np.ndarray,
    eval_splits: np.ndarray, dataset: DeamDataset,
) -> pd.DataFrame:
    """A family head's rows: predictive mean and SD as `<dim>_mu` / `<dim>_sigma`, the
    family's parameters as `<dim>__<param>` columns, the family's name in `family`. The
    quantile method's quantiles are conformalised on the validation songs' ratings (CQR)
    per member first."""
    family_name, params = predict_family(trained.model, x_eval)
    frames = []
    for name in spec.reported_methods:
        member_params = params
        if method_spec(name).uncertainty is Uncertainty.CQR:
            valid = eval_splits == "valid"
            ratings, mask = rating_matrix(dataset.ratings, eval_ids[valid])
            member_params = conformalise_quantiles(params, valid, ratings, mask)
        frames.append(family_frame(eval_ids, eval_splits, name, spec.seeds, family_name,
                                   member_params))
    predictions = pd.concat(frames, ignore_index=True)
    for column, value in spec.hyperparameters().items():
        predictions[column] = value
    return predictions


def _metrics(
    spec: TrialSpec, trained: TrainedStack, predictions: pd.DataFrame, dataset: DeamDataset
) -> dict[str, float]:
    """val_loss (what a search optimises), training facts, and test scores."""
    result: dict[str, float] = {
        "val_loss": float(trained.best_val_loss.mean()),
        "epochs_trained": float(trained.epochs_trained.mean()),
        "best_epoch": float(trained.best_epoch.mean()),
    }
    for k, seed in enumerate(spec.seeds):
        result[f"val_loss_seed{seed}"] = float(trained.best_val_loss[k])
    result |= score_split(predictions, dataset.songs, dataset.ratings, "test")
    if "seeds" in spec.reported_methods and len(spec.seeds) > 1:
        ensemble = score_split(combine_seeds(predictions, "seeds"), dataset.songs,
                               dataset.ratings, "test")
        result |= {k.replace("/seeds/", "/seeds_ensemble/"): v for k, v in ensemble.items()}
    return result
