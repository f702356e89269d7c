"""From a trained stack to predictions, and from single-seed predictions to ensembles.

Arrays first (`predict`, `mc_dropout`), then the
prediction tables every trial writes (schema.PREDICTION_COLUMNS) and the two ensemble
combiners the analysis applies to them:

* `combine_seeds`: the paper's "random seeds" method, mean and SD of n single-seed means
  (Lakshminarayanan et al., 2017, deep ensembles, read for the mean only);
* `mixture`: an equally weighted mixture of n Gaussians, e.g. an ensemble of NLL models:
  mean = mean of mu; total variance = mean of sigma^2 (aleatoric) + variance of mu
  (epistemic). The SDs are never averaged: averaging sigma would drop the epistemic part
  and understate the spread.

`mixture` uses the population variance over members (ddof = 0): that is the variance of
the equally weighted mixture. `combine_seeds` and `mc_dropout` default to the paper's
sample SD (eq. 5 and eq. 7, ddof = 1); with ddof = 0 `combine_seeds` is exactly `mixture`
with sigma = 0. Ensemble rows carry seed = ENSEMBLE_SEED (-1) and keep their method name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mer_uq import families
from mer_uq.schema import (
    DIMENSIONS,
    HP_PREFIX,
    PRED_MU,
    PRED_SIGMA,
    PREDICTION_COLUMNS,
    PREDICTION_KEY_COLUMNS,
)

if TYPE_CHECKING:  # torch only where a model runs: the analysis imports this module too
    import torch

    from mer_uq.model import StackedFCN

ENSEMBLE_SEED = -1
ALEATORIC_SD = {d: f"{PRED_SIGMA[d]}_aleatoric" for d in DIMENSIONS}
EPISTEMIC_SD = {d: f"{PRED_SIGMA[d]}_epistemic" for d in DIMENSIONS}
N_MEMBERS = "n_members"
# Songs x passes x width values of one MC-dropout chunk: bounds memory, fixed so that the
# masks drawn do not depend on the machine.
_MC_CHUNK_VALUES = 1 << 22


# ---------------------------------------------------------------- arrays


def _inputs(model: StackedFCN, x: np.ndarray) -> torch.Tensor:
    import torch

    model.check_features(x)
    return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=model.device)


def predict(model: StackedFCN, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Deterministic forward pass (dropout off) of every member: mu, sigma [K, N, D]
    (sigma None for a mean-only model)."""
    import torch

    with torch.no_grad():
        out = model.forward(_inputs(model, x))
    sigma = None if out.log_sigma is None else out.sigma.cpu().numpy()
    return out.mu.cpu().numpy(), sigma


def predict_family(model: StackedFCN, x: np.ndarray) -> tuple[str, dict[str, np.ndarray]]:
    """Deterministic forward pass of a family-head model: its family and each parameter
    [K, N, D] in float64."""
    import torch

    if model.head is None:
        raise ValueError("predict_family needs a model with a family head")
    with torch.no_grad():
        out = model.forward(_inputs(model, x))
    return out.family, {k: v.double().cpu().numpy() for k, v in out.params.items()}


def mc_dropout(
    model: StackedFCN, x: np.ndarray, passes: int, ddof: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """MC dropout (Gal & Ghahramani, 2016): mean and SD of mu over `passes` stochastic
    forward passes with dropout on, per member: [K, N, D] each.

    ``ddof=1`` is the paper's eq. 7 (sample SD, n - 1); ``ddof=0`` the population SD.

    Each member's masks come from its own `mc_dropout` stream, so a seed's MC prediction
    is the same alone or stacked, and independent of how long it trained.
    """
    if passes < 2:
        raise ValueError(f"MC dropout needs at least 2 passes, got {passes}")
    if ddof not in (0, 1):
        raise ValueError(f"MC dropout SD ddof must be 0 or 1, got {ddof}")
    if not model.dropout.active:
        raise ValueError("MC dropout needs a model with dropout > 0")
    import torch

    with torch.no_grad():
        inputs = _inputs(model, x)
        n_songs = inputs.shape[0]
        cfg = model.config
        chunk = max(1, _MC_CHUNK_VALUES // (n_songs * cfg.hidden_width * cfg.depth))
        mean = np.zeros((model.n_members, n_songs, len(DIMENSIONS)))
        sq = np.zeros_like(mean)
        for k, streams in enumerate(model.streams):
            members = slice(k, k + 1)
            for start in range(0, passes, chunk):
                n = min(chunk, passes - start)
                shape = (n, cfg.depth, n_songs, cfg.hidden_width)
                masks = model.dropout.masks(model.dropout.random_bytes(streams.mc_dropout, shape))
                masks_t = torch.from_numpy(masks).to(model.device)
                x_rep = inputs.expand(n, *inputs.shape)
                mu = model.forward(x_rep, [masks_t[:, i] for i in range(cfg.depth)], members).mu
                mu = mu.double().cpu().numpy()
                mean[k] += mu.sum(axis=0)
                sq[k] += (mu * mu).sum(axis=0)
    mean /= passes
    var = np.maximum(sq / passes - mean * mean, 0.0) * (passes / (passes - ddof))
    return mean, np.sqrt(var)


# ---------------------------------------------------------------- tables


def prediction_frame(
    song_ids: np.ndarray,
    splits: np.ndarray,
    method: str,
    seeds: tuple[int, ...],
    mu: np.ndarray,
    sigma: np.ndarray | None,
) -> pd.DataFrame:
    """Rows (song, split, method, seed) in schema.PREDICTION_COLUMNS order from [K, N, D]
    arrays; sigma None -> NaN (a single mean-only model has no spread of its own)."""
    k, n, _ = mu.shape
    frame = pd.DataFrame(
        {
            "song_id": np.tile(np.asarray(song_ids, dtype=np.int64), k),
            "split": np.tile(np.asarray(splits, dtype=object), k),
            "method": method,
            "seed": np.repeat(np.asarray(seeds, dtype=np.int64), n),
        }
    )
    for j, dim in enumerate(DIMENSIONS):
        frame[PRED_MU[dim]] = mu[:, :, j].reshape(-1).astype(np.float64)
        frame[PRED_SIGMA[dim]] = (
            np.nan if sigma is None else sigma[:, :, j].reshape(-1).astype(np.float64)
        )
    return frame[list(PREDICTION_COLUMNS)]


def family_frame(
    song_ids: np.ndarray,
    splits: np.ndarray,
    method: str,
    seeds: tuple[int, ...],
    family_name: str,
    params: dict[str, np.ndarray],
) -> pd.DataFrame:
    """`prediction_frame` of a family's distributions (params {name: [K, N, D]}): mu and
    sigma are the predictive mean and SD (mer_uq.families), then the `family` column and
    one `<dim>__<param>` column per parameter, which `families.from_columns` reads back."""
    dist = families.family(family_name)(params)
    frame = prediction_frame(song_ids, splits, method, seeds, dist.mean(), dist.sd())
    frame[families.FAMILY_COLUMN] = family_name
    for j, dim in enumerate(DIMENSIONS):
        for name, value in params.items():
            frame[families.param_column(dim, name)] = value[:, :, j].reshape(-1)
    return frame


def _group_keys(predictions: pd.DataFrame) -> list[str]:
    """Rows are ensembled over seeds only: never across songs, splits, methods or
    hyperparameters."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"prediction table lacks column(s) {missing}")
    hp = [c for c in predictions.columns if c.startswith(HP_PREFIX)]
    return [c for c in PREDICTION_KEY_COLUMNS if c != "seed"] + hp


def _select(predictions: pd.DataFrame, method: str | None) -> pd.DataFrame:
    rows = predictions if method is None else predictions[predictions["method"] == method]
    if rows.empty:
        raise ValueError(f"no prediction rows for method {method!r}")
    return rows


def _grouped(rows: pd.DataFrame, keys: list[str]) -> pd.core.groupby.DataFrameGroupBy:
    grouped = rows.groupby(keys, sort=True, dropna=False)
    sizes = grouped.size()
    if sizes.min() < 2:
        bad = sizes[sizes < 2].index[0]
        raise ValueError(f"ensemble needs >= 2 seeds per song; group {bad} has {sizes.min()}")
    if sizes.nunique() != 1:
        raise ValueError(
            f"songs have different numbers of seeds ({sorted(sizes.unique())}): a seed is "
            "missing for some songs"
        )
    return grouped


def combine_seeds(
    predictions: pd.DataFrame, method: str | None = "seeds", ddof: int = 1
) -> pd.DataFrame:
    """The random-seeds ensemble: per song, the mean and SD of the single-seed means (their
    own sigma, if any, is ignored). One row per song with seed ENSEMBLE_SEED and a
    `n_members` column. ``ddof=1`` (default) is the paper's eq. 5 (sample SD over seeds);
    ``ddof=0`` the population SD, i.e. exactly `mixture` with sigma = 0."""
    if ddof not in (0, 1):
        raise ValueError(f"seeds SD ddof must be 0 or 1, got {ddof}")
    rows = _select(predictions, method)
    keys = _group_keys(rows)
    grouped = _grouped(rows, keys)
    mu_cols = [PRED_MU[d] for d in DIMENSIONS]
    out = grouped[mu_cols].mean()
    spread = grouped[mu_cols].std(ddof=ddof)
    for dim in DIMENSIONS:
        out[PRED_SIGMA[dim]] = spread[PRED_MU[dim]]
    out[N_MEMBERS] = grouped.size()
    return _finish(out.reset_index(), [])


def mixture(predictions: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """Gaussian-mixture ensemble over seeds: mu = mean of mu; sigma = sqrt(mean sigma^2 +
    var mu), with the two parts as `<dim>_sigma_aleatoric` and `<dim>_sigma_epistemic`."""
    rows = _select(predictions, method)
    sigma_cols = [PRED_SIGMA[d] for d in DIMENSIONS]
    if rows[sigma_cols].isna().to_numpy().any():
        bad = rows.loc[rows[sigma_cols].isna().any(axis=1), "method"].iloc[0]
        raise ValueError(
            f"mixture needs sigma for every row; method {bad!r} has NaN sigma (a mean-only "
            "model: use combine_seeds)"
        )
    keys = _group_keys(rows)
    work = rows.assign(**{f"_var_{d}": rows[PRED_SIGMA[d]] ** 2 for d in DIMENSIONS})
    grouped = _grouped(work, keys)
    mu_cols = [PRED_MU[d] for d in DIMENSIONS]
    out = grouped[mu_cols].mean()
    aleatoric = grouped[[f"_var_{d}" for d in DIMENSIONS]].mean()
    epistemic = grouped[mu_cols].var(ddof=0)
    for dim in DIMENSIONS:
        out[ALEATORIC_SD[dim]] = np.sqrt(aleatoric[f"_var_{dim}"])
        out[EPISTEMIC_SD[dim]] = np.sqrt(epistemic[PRED_MU[dim]])
        out[PRED_SIGMA[dim]] = np.hypot(out[ALEATORIC_SD[dim]], out[EPISTEMIC_SD[dim]])
    out[N_MEMBERS] = grouped.size()
    parts = [c for d in DIMENSIONS for c in (ALEATORIC_SD[d], EPISTEMIC_SD[d])]
    return _finish(out.reset_index(), parts)


def _finish(out: pd.DataFrame, parts: list[str]) -> pd.DataFrame:
    out["seed"] = ENSEMBLE_SEED
    hp = [c for c in out.columns if c.startswith(HP_PREFIX)]
    return out[[*PREDICTION_COLUMNS, *hp, N_MEMBERS, *parts]]
