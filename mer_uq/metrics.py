"""Scores of one prediction against its target, for ONE dimension (valence or arousal).

Every function here is pure: 1-D arrays in, one float out. Callers loop over
`schema.DIMENSIONS`; keeping the functions one-dimensional keeps them checkable against
scipy and closed forms, and keeps a valence score from ever being averaged with an arousal
score by accident.

Two families:

* point agreement (R^2, Pearson r, Spearman rho), used by the paper's Tables 2 and 3 for the
  predicted mean and for the predicted SD;
* proper scores and calibration of the predicted Gaussian N(mu, sigma^2) (Gaussian NLL,
  CRPS, central-interval coverage, calibration curve), which the paper lacks. They are what
  an uncertainty estimate should be judged by: a correlation ignores scale, these do not.

Bad input (shapes that differ, NaN or inf, sigma <= 0, too few values) raises ValueError
naming the argument, instead of returning a silent NaN that would surface as a blank cell
in a table much later. The one deliberate NaN: a correlation with a constant input is
undefined, and a constant prediction (e.g. a constant-SD baseline) is a legitimate thing to
score, so pearson_r / spearman_rho return NaN there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr, ndtri

ArrayLike = np.ndarray | Sequence[float]

DEFAULT_CALIBRATION_LEVELS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 10))
_LOG_2PI = float(np.log(2.0 * np.pi))


def _vector(name: str, values: ArrayLike) -> np.ndarray:
    """One finite 1-D float64 array; the error names the argument that is wrong."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one dimension at a time), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name} has a non-finite value at index {bad}: {array[bad]}")
    return array


def _vectors(min_len: int, **arrays: ArrayLike) -> list[np.ndarray]:
    out = [_vector(name, values) for name, values in arrays.items()]
    lengths = {name: len(a) for name, a in zip(arrays, out, strict=True)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays must have the same length, got {lengths}")
    if out[0].size < min_len:
        raise ValueError(f"need at least {min_len} values, got {out[0].size}")
    return out


def _positive(name: str, sigma: np.ndarray) -> None:
    if np.any(sigma <= 0):
        bad = int(np.flatnonzero(sigma <= 0)[0])
        raise ValueError(f"{name} must be > 0, got {sigma[bad]} at index {bad}")


def _level(level: float) -> float:
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"coverage level must be in (0, 1), got {level}")
    return float(level)


# ---------------------------------------------------------------- point agreement


def r2_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot, as in the paper's tables.

    Negative when the prediction is worse than predicting the target's own mean: the
    paper's SD R^2 values are << 0, so no clipping at 0. NaN-free: a constant target has
    no variance to explain and raises.
    """
    y_true, y_pred = _vectors(2, y_true=y_true, y_pred=y_pred)
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot == 0.0:
        raise ValueError("y_true is constant: R^2 is undefined")
    return 1.0 - float(np.sum((y_true - y_pred) ** 2)) / ss_tot


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    # Constant is tested exactly: x - mean(x) of a constant can leave ~1e-17 residues whose
    # "correlation" is noise, not 0.
    if np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    xc = x - x.mean()
    yc = y - y.mean()
    denom = float(np.sqrt(np.sum(xc * xc) * np.sum(yc * yc)))
    if denom == 0.0:
        return float("nan")
    return float(np.clip(np.sum(xc * yc) / denom, -1.0, 1.0))


def pearson_r(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation; NaN when either input is constant (see module docstring)."""
    x, y = _vectors(2, x=x, y=y)
    return _correlation(x, y)


def average_ranks(values: ArrayLike) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their positions (scipy.stats.rankdata's
    'average'); NaN is not allowed. Ranks are integers or halves, so they are exact.

    Written here rather than imported: scipy.stats costs ~0.8 s to import, more than the
    whole table of a report, and this is the only thing the metrics need from it.
    """
    (v,) = _vectors(1, values=values)
    order = np.argsort(v, kind="mergesort")
    ordered = v[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], v.size]  # each run of equal values: positions [start, end)
    ranks = np.empty(v.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman_rho(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for a constant input."""
    x, y = _vectors(2, x=x, y=y)
    return _correlation(average_ranks(x), average_ranks(y))


# ---------------------------------------------------------------- predictive Gaussian


def gaussian_nll(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> float:
    """Mean negative log density of y under N(mu, sigma^2), with the 0.5 log(2 pi) constant.

    The full constant makes values comparable with other densities and with published
    numbers. y may be song means or individual ratings (repeat mu and sigma per rating).
    """
    y, mu, sigma = _vectors(1, y=y, mu=mu, sigma=sigma)
    _positive("sigma", sigma)
    z = (y - mu) / sigma
    return float(np.mean(0.5 * z * z + np.log(sigma) + 0.5 * _LOG_2PI))


def crps_gaussian(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike) -> float:
    """Mean continuous ranked probability score of N(mu, sigma^2) at y (lower is better).

    Closed form of Gneiting & Raftery (2007), in the units of y:
    sigma * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)), z = (y - mu) / sigma.
    Unlike the NLL it stays bounded when sigma is far too small, so one overconfident song
    cannot dominate the mean.
    """
    y, mu, sigma = _vectors(1, y=y, mu=mu, sigma=sigma)
    _positive("sigma", sigma)
    z = (y - mu) / sigma
    pdf = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    crps = sigma * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * pdf - 1.0 / np.sqrt(np.pi))
    return float(np.mean(crps))


def interval_coverage(y: ArrayLike, mu: ArrayLike, sigma: ArrayLike, level: float) -> float:
    """Fraction of y inside the central `level` interval mu +/- z sigma of N(mu, sigma^2).

    A calibrated predictor covers `level` of the targets; less means overconfident.
    """
    y, mu, sigma = _vectors(1, y=y, mu=mu, sigma=sigma)
    _positive("sigma", sigma)
    z_max = ndtri(0.5 + 0.5 * _level(level))
    return float(np.mean(np.abs(y - mu) / sigma <= z_max))


def calibration_curve(
    y: ArrayLike,
    mu: ArrayLike,
    sigma: ArrayLike,
    levels: Sequence[float] = DEFAULT_CALIBRATION_LEVELS,
) -> tuple[np.ndarray, np.ndarray]:
    """(expected, observed) central-interval coverage at each level: the reliability diagram.

    Standardised errors |y - mu| / sigma are computed once; each point equals
    `interval_coverage` at that level exactly (same comparison).
    """
    y, mu, sigma = _vectors(1, y=y, mu=mu, sigma=sigma)
    _positive("sigma", sigma)
    expected = np.array([_level(level) for level in levels], dtype=np.float64)
    abs_z = np.abs(y - mu) / sigma
    observed = np.array(
        [np.mean(abs_z <= ndtri(0.5 + 0.5 * level)) for level in expected], dtype=np.float64
    )
    return expected, observed
