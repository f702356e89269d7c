"""The rows of the paper's tables, as aligned prediction arrays.

A trial Parquet has one row per (song, method, seed); a table row is a *predictor*: one
method over its seeds (mean +/- SD over seeds), or one combined prediction (the seeds
ensemble, a deep ensemble, a baseline) that gives a single value. Building every row once,
as [n_seeds, n_songs] arrays over one common song order, is what lets the tables, the
proper scores, the bootstrap and the figures all score exactly the same numbers.

Ensembles are formed here from the member predictions with mer_uq.prediction's combiners:
``combine_seeds`` for the paper's random-seeds method (mean of the single-model means, SD
across them) and ``mixture`` for deep ensembles of two-output models (total variance =
mean sigma^2 + variance of mu, split into aleatoric and epistemic parts).

A method of a non-Gaussian family (mer_uq.families) keeps each seed's distribution
(`distributions`), which the proper scores use; its table cells read the predictive
mean and SD like every other row's. Its deep ensemble is the mixture of the members'
predictive means and variances, scored as that Gaussian (its mean and variance are the
mixture's exactly; its shape is not).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mer_uq import schema
from mer_uq.families import FAMILY_COLUMN, Predictive
from mer_uq.methods import EXTRA_METHODS, METHODS, PAPER_METHODS
from mer_uq.prediction import ALEATORIC_SD, EPISTEMIC_SD, combine_seeds, mixture
from mer_uq.scores import row_distribution

# Row groups, in the order they are printed; a rule separates groups in the tables.
PAPER, EXTRA, ENSEMBLE, BASELINE = "paper", "extra", "ensemble", "baseline"
CONFORMAL = "conformal"  # a row's sigma calibrated on the validation songs (conformal_rows)
GROUP_ORDER: tuple[str, ...] = (PAPER, EXTRA, ENSEMBLE, CONFORMAL, BASELINE)

# Methods whose model outputs (mu, sigma): their seeds form a deep ensemble (mixture).
TWO_OUTPUT_METHODS: tuple[str, ...] = tuple(
    n for n, spec in METHODS.items() if spec.spec.two_outputs)

# The split every table scores (its songs are the report's "test songs"), and the split
# conformal calibration fits its factors on: never the same.
EVAL_SPLIT, CALIBRATION_SPLIT = "test", "valid"
SEEDS_ENSEMBLE_KEY = "seeds"
SEEDS_SINGLE_KEY = "seeds_single"
DEEP_ENSEMBLE_PREFIX = "ensemble_"

# The methods' labels are mer_uq.methods'; the baselines are the analysis's own rows.
BASELINE_LABELS: dict[str, str] = {
    "baseline_ridge": "Ridge probe",
    "baseline_constant_sd": "Constant SD (training mean)",
    "baseline_sd_from_mean": "SD from predicted mean (quadratic)",
}

def paper_row_key(method: str, table: str) -> str:
    """Our row that a paper method's cell is compared with. The paper's Table 2 "Random
    Seeds" prints ± values, so it is the single-seed models (mean ± SD over seeds); its
    Table 3 "Random Seeds" is the ensemble (the SD across the seeds' means)."""
    if method == "seeds":
        return SEEDS_SINGLE_KEY if table == "table2" else SEEDS_ENSEMBLE_KEY
    return method


# Rows whose group depends on the table: Table 2 of the paper has the single-seed models
# as "Random Seeds" and no MC dropout row, so there the ensemble and MC dropout go beyond.
_TABLE_GROUPS: dict[tuple[str, str], str] = {
    ("table2", SEEDS_SINGLE_KEY): PAPER,
    ("table2", SEEDS_ENSEMBLE_KEY): EXTRA,
    ("table2", "mc_dropout"): EXTRA,
}


def table_group(row: PredictionRow, table: str) -> str:
    """The group a row is printed in, in one table (the paper's layout)."""
    return _TABLE_GROUPS.get((table, row.key), row.group)


def table_order(rows: list[PredictionRow], table: str) -> list[PredictionRow]:
    """Rows in one table's print order: by group, the paper's rows in the paper's order."""
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}

    def key(item: tuple[int, PredictionRow]) -> tuple[int, int]:
        index, row = item
        group = table_group(row, table)
        if group == PAPER and row.method in PAPER_METHODS:
            return rank[group], PAPER_METHODS.index(row.method)
        return rank[group], index

    return [row for _, row in sorted(enumerate(rows), key=key)]


def table_label(row: PredictionRow, table: str) -> str:
    """The row's name in one table: the paper's name where it is the paper's row."""
    if table == "table2" and row.key == SEEDS_SINGLE_KEY:
        return method_label("seeds")
    return row.label


def loss_form(method: str) -> str:
    """Which loss a method name stands for (printed paper form or exact form: DESIGN.md
    notes that eq. 2 and 3 as printed differ from the textbook forms)."""
    spec = METHODS.get(method)
    return f"{spec.loss}: {spec.description}" if spec else "not in mer_uq.methods"


def method_label(method: str) -> str:
    spec = METHODS.get(method)
    return spec.label if spec else BASELINE_LABELS.get(method, method)


@dataclass
class PredictionRow:
    """One predictor over the common song order.

    ``mu[dim]`` and ``sigma[dim]`` are [n_members, n_songs]: one member per seed for a
    per-seed row, exactly one for a single-valued row. ``sigma`` is NaN where the method
    predicts no spread (a single mean-only model). Ensembles carry their variance parts.
    """

    key: str
    label: str
    group: str
    method: str
    single: bool
    seeds: tuple[int, ...]
    mu: dict[str, np.ndarray]
    sigma: dict[str, np.ndarray]
    aleatoric_var: dict[str, np.ndarray] | None = None  # [1, n_songs]
    epistemic_var: dict[str, np.ndarray] | None = None  # [1, n_songs]
    notes: list[str] = field(default_factory=list)
    # A non-Gaussian family's distribution of each member over the songs, per dimension
    # (mer_uq.families); None: the row is the Gaussian N(mu, sigma^2).
    distributions: dict[str, list[Predictive]] | None = None

    @property
    def has_sigma(self) -> bool:
        return all(np.isfinite(self.sigma[d]).all() for d in schema.DIMENSIONS)

    @property
    def n_members(self) -> int:
        return int(self.mu[schema.DIMENSIONS[0]].shape[0])


def member_arrays(predictions: pd.DataFrame, method: str, song_ids: np.ndarray, split: str
                  ) -> tuple[tuple[int, ...], dict[str, np.ndarray], dict[str, np.ndarray],
                             list[int]]:
    """[n_seeds, n_songs] mu and sigma of one method, songs in ``song_ids`` order.

    A seed that lacks any of the songs is left out (and returned in the last element) so
    that every statistic of a row is computed on the same songs as every other row.
    """
    rows = predictions[(predictions["method"] == method) & (predictions["split"] == split)]
    seeds, dropped = [], []
    mu = {d: [] for d in schema.DIMENSIONS}
    sigma = {d: [] for d in schema.DIMENSIONS}
    for seed, group in rows.groupby("seed", sort=True):
        by_song = group.set_index("song_id")
        if not np.isin(song_ids, by_song.index.to_numpy()).all():
            dropped.append(int(seed))
            continue
        by_song = by_song.loc[song_ids]
        seeds.append(int(seed))
        for d in schema.DIMENSIONS:
            mu[d].append(by_song[schema.PRED_MU[d]].to_numpy(dtype=np.float64))
            sigma[d].append(by_song[schema.PRED_SIGMA[d]].to_numpy(dtype=np.float64))
    shape = (0, len(song_ids))
    mu_arr = {d: np.array(v) if v else np.empty(shape) for d, v in mu.items()}
    sigma_arr = {d: np.array(v) if v else np.empty(shape) for d, v in sigma.items()}
    return tuple(seeds), mu_arr, sigma_arr, dropped


def member_distributions(predictions: pd.DataFrame, method: str, song_ids: np.ndarray,
                         split: str, seeds: tuple[int, ...]
                         ) -> dict[str, list[Predictive]] | None:
    """Each seed's family distribution over ``song_ids`` per dimension, rebuilt from the
    trial's `family` and `<dim>__<param>` columns; None for a Gaussian method."""
    rows = predictions[(predictions["method"] == method) & (predictions["split"] == split)]
    if FAMILY_COLUMN not in rows.columns or rows[FAMILY_COLUMN].isna().all():
        return None
    found: dict[str, list[Predictive]] = {d: [] for d in schema.DIMENSIONS}
    for seed in seeds:
        by_song = rows[rows["seed"] == seed].set_index("song_id").loc[song_ids]
        for d in schema.DIMENSIONS:
            dist = row_distribution(by_song, d)
            if dist is None:
                return None
            found[d].append(dist)
    return found


def _with_family(row: PredictionRow, predictions: pd.DataFrame, song_ids: np.ndarray,
                 split: str) -> PredictionRow:
    """Attach the row's family distributions and, where the family separates them (the
    evidential NIG), its aleatoric and epistemic variance (mean over the seeds)."""
    row.distributions = member_distributions(predictions, row.method, song_ids, split,
                                             row.seeds)
    if row.distributions is None:
        return row
    parts = {d: [dist.variance_parts() for dist in row.distributions[d]]
             for d in schema.DIMENSIONS}
    if all(p is not None for d in schema.DIMENSIONS for p in parts[d]):
        row.aleatoric_var = {d: np.mean([p[0] for p in parts[d]], axis=0)[None, :]
                             for d in schema.DIMENSIONS}
        row.epistemic_var = {d: np.mean([p[1] for p in parts[d]], axis=0)[None, :]
                             for d in schema.DIMENSIONS}
    return row


def member_variance_parts(predictions: pd.DataFrame, method: str, song_ids: np.ndarray,
                          split: str, seeds: tuple[int, ...]
                          ) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray] | None]:
    """[n_seeds, n_songs] aleatoric and epistemic variances of a method that writes its SD's
    two parts per member (`<dim>_sigma_aleatoric` / `_epistemic`, e.g. the last-layer
    Laplace), or (None, None) where it does not."""
    columns = [c for d in schema.DIMENSIONS for c in (ALEATORIC_SD[d], EPISTEMIC_SD[d])]
    if not set(columns) <= set(predictions.columns):
        return None, None
    rows = predictions[(predictions["method"] == method) & (predictions["split"] == split)
                       & predictions["seed"].isin(seeds)]
    if rows.empty or not np.isfinite(rows[columns].to_numpy(dtype=np.float64)).all():
        return None, None
    parts: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
    for part, names in zip(parts, (ALEATORIC_SD, EPISTEMIC_SD), strict=True):
        for d in schema.DIMENSIONS:
            table = rows.pivot(index="seed", columns="song_id", values=names[d])
            part[d] = table.loc[list(seeds), song_ids].to_numpy(dtype=np.float64) ** 2
    return parts


def _per_seed_row(key: str, method: str, group: str, seeds: tuple[int, ...],
                  mu: dict[str, np.ndarray], sigma: dict[str, np.ndarray], label: str
                  ) -> PredictionRow:
    return PredictionRow(key, label, group, method, single=False, seeds=seeds, mu=mu,
                         sigma=sigma)


def _members_frame(predictions: pd.DataFrame, method: str, split: str,
                   seeds: tuple[int, ...]) -> pd.DataFrame:
    """The prediction rows a combiner sees: one method, one split, the kept seeds. The
    hp_* columns are dropped because a table row combines the seeds of one method; the
    trials of one sweep share their hyperparameters (Optuna trials live elsewhere)."""
    rows = predictions[(predictions["method"] == method) & (predictions["split"] == split)
                       & predictions["seed"].isin(seeds)]
    return rows[list(schema.PREDICTION_COLUMNS)]


def _ensemble_arrays(ensemble: pd.DataFrame, song_ids: np.ndarray, columns: dict[str, str]
                     ) -> dict[str, np.ndarray]:
    by_song = ensemble.set_index("song_id").loc[song_ids]
    return {d: by_song[columns[d]].to_numpy(dtype=np.float64)[None, :] for d in schema.DIMENSIONS}


def seeds_ensemble_row(predictions: pd.DataFrame, split: str, song_ids: np.ndarray,
                       seeds: tuple[int, ...], sd_ddof: int = 1) -> PredictionRow:
    """The paper's random-seeds method: one prediction from n mean-only models
    (mer_uq.prediction.combine_seeds: mean and SD of the seeds' means; ddof 1 = eq. 5)."""
    ensemble = combine_seeds(_members_frame(predictions, "seeds", split, seeds), "seeds",
                             ddof=sd_ddof)
    label = f"{method_label('seeds')} (ensemble of {len(seeds)})"
    return PredictionRow(SEEDS_ENSEMBLE_KEY, label, PAPER, "seeds", single=True, seeds=seeds,
                         mu=_ensemble_arrays(ensemble, song_ids, schema.PRED_MU),
                         sigma=_ensemble_arrays(ensemble, song_ids, schema.PRED_SIGMA))


def deep_ensemble_row(predictions: pd.DataFrame, method: str, split: str,
                      song_ids: np.ndarray, seeds: tuple[int, ...]) -> PredictionRow:
    """Deep ensemble of one two-output method: mer_uq.prediction.mixture over its seeds."""
    ensemble = mixture(_members_frame(predictions, method, split, seeds), method)
    alea = _ensemble_arrays(ensemble, song_ids, ALEATORIC_SD)
    epis = _ensemble_arrays(ensemble, song_ids, EPISTEMIC_SD)
    label = f"Deep ensemble of {method_label(method)} ({len(seeds)} seeds)"
    return PredictionRow(f"{DEEP_ENSEMBLE_PREFIX}{method}", label, ENSEMBLE, method,
                         single=True, seeds=seeds,
                         mu=_ensemble_arrays(ensemble, song_ids, schema.PRED_MU),
                         sigma=_ensemble_arrays(ensemble, song_ids, schema.PRED_SIGMA),
                         aleatoric_var={d: v ** 2 for d, v in alea.items()},
                         epistemic_var={d: v ** 2 for d, v in epis.items()})


def build_rows(predictions: pd.DataFrame, song_ids: np.ndarray, split: str = "test",
               baseline_predictions: pd.DataFrame | None = None, seeds_sd_ddof: int = 1
               ) -> list[PredictionRow]:
    """Every table row the predictions support, in print order (paper, extra, ensembles,
    baselines). Unknown method names are kept as extra rows rather than dropped, so a new
    method shows up in the report before anyone edits this module."""
    song_ids = np.asarray(song_ids, dtype=np.int64)
    present = set(predictions["method"].unique())
    known = set(PAPER_METHODS) | set(EXTRA_METHODS)
    extras = [m for m in EXTRA_METHODS if m in present] + sorted(present - known)
    rows: list[PredictionRow] = []
    ensembles: list[PredictionRow] = []
    for method in [m for m in PAPER_METHODS if m in present] + extras:
        seeds, mu, sigma, dropped = member_arrays(predictions, method, song_ids, split)
        if not seeds:
            continue
        note = [f"seeds {dropped} left out: they lack some {split} songs"] if dropped else []
        if method == "seeds":
            single = _per_seed_row(SEEDS_SINGLE_KEY, method, EXTRA, seeds, mu, sigma,
                                   f"{method_label('seeds')}, single models")
            single.notes += note
            if len(seeds) >= 2:
                rows.append(seeds_ensemble_row(predictions, split, song_ids, seeds,
                                                  seeds_sd_ddof))
            else:
                single.notes.append("one seed only: no random-seeds ensemble")
            rows.append(single)
            continue
        group = PAPER if method in PAPER_METHODS else EXTRA
        row = _per_seed_row(method, method, group, seeds, mu, sigma, method_label(method))
        row = _with_family(row, predictions, song_ids, split)
        row.notes += note
        if row.aleatoric_var is None:  # a family that splits its SD has set both already
            row.aleatoric_var, row.epistemic_var = member_variance_parts(
                predictions, method, song_ids, split, seeds)
        rows.append(row)
        if method in TWO_OUTPUT_METHODS and len(seeds) >= 2 and row.has_sigma:
            ensembles.append(deep_ensemble_row(predictions, method, split, song_ids, seeds))
    rows += ensembles
    if baseline_predictions is not None:
        for method in baseline_predictions["method"].unique():
            seeds, mu, sigma, _ = member_arrays(baseline_predictions, method, song_ids, split)
            if seeds:
                rows.append(PredictionRow(method, method_label(method), BASELINE, method,
                                          single=True, seeds=seeds, mu=mu, sigma=sigma))
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    return sorted(rows, key=lambda r: rank[r.group])  # stable: keeps order within a group
