"""Conformalised quantile regression (CQR; Romano, Patterson & Candes, NeurIPS 2019) for
the `quantile` method, in numpy.

Each symmetric pair of the fixed levels (t, 1 - t) of `families.QUANTILE_LEVELS` is a
central interval of nominal coverage L = 1 - 2t. On the calibration set (the validation
songs' individual ratings: each rating a sample of its song's distribution) the
conformity score of a rating y under the interval [lo, hi] is E = max(lo - y, y - hi);
the interval is widened (or narrowed, when E's quantile is negative) by Q, the
ceil((n + 1) L)-th smallest of the n scores, so that under exchangeability a new rating
falls in [lo - Q, hi + Q] with probability >= L. Each level and each member (seed) and
dimension is calibrated on its own. Where ceil((n + 1) L) > n the largest score is used
(the finite-sample guarantee then does not hold; it needs n >= L / (1 - L) ratings, 39
for 95 %).

The ratings of one song are not exchangeable with another song's (they share the song),
so the guarantee is over ratings of exchangeable songs, approximately. The adjusted
quantiles are made increasing again from the median outwards (a lower quantile never
above the next inner one, less QUANTILE_GAP), which can only widen an outer interval.
"""

from __future__ import annotations

import math

import numpy as np

from mer_uq.families import QUANTILE_LEVELS, quantile_param

GAP = 1e-4  # as heads.QUANTILE_GAP


def cqr_margin(lo: np.ndarray, hi: np.ndarray, y: np.ndarray, level: float) -> float:
    """The CQR margin Q of one interval level from calibration lo, hi and targets y."""
    scores = np.maximum(lo - y, y - hi)
    n = scores.size
    if n == 0:
        raise ValueError("CQR needs at least one calibration target")
    rank = min(math.ceil((n + 1) * level), n)
    return float(np.partition(scores, rank - 1)[rank - 1])


def level_pairs() -> list[tuple[int, int, float]]:
    """(lower index, upper index, coverage) of each symmetric pair of QUANTILE_LEVELS."""
    levels = QUANTILE_LEVELS
    pairs = []
    for i, t in enumerate(levels):
        if t < 0.5:
            j = levels.index(round(1.0 - t, 6))
            pairs.append((i, j, 1.0 - 2.0 * t))
    return pairs


def monotone(knots: np.ndarray) -> np.ndarray:
    """Quantiles [..., m] made strictly increasing outwards from the median."""
    out = knots.copy()
    mid = QUANTILE_LEVELS.index(0.5)
    for i in range(mid - 1, -1, -1):
        out[..., i] = np.minimum(out[..., i], out[..., i + 1] - GAP)
    for i in range(mid + 1, out.shape[-1]):
        out[..., i] = np.maximum(out[..., i], out[..., i - 1] + GAP)
    return out


def conformalise(knots: np.ndarray, calibration: np.ndarray, songs: np.ndarray,
                 y: np.ndarray) -> np.ndarray:
    """CQR of one member and dimension: knots [N, m] of N songs; the calibration songs are
    `calibration` (a bool mask over N); y the calibration ratings and `songs` the position
    of each rating's song among the calibration songs. Returns the adjusted knots [N, m]."""
    cal = knots[calibration][songs]
    out = knots.copy()
    for lo, hi, level in level_pairs():
        margin = cqr_margin(cal[:, lo], cal[:, hi], y, level)
        out[:, lo] -= margin
        out[:, hi] += margin
    return monotone(out)


def conformalise_quantiles(params: dict[str, np.ndarray], calibration: np.ndarray,
                           ratings: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """CQR of every member and dimension: params {q<level>: [K, N, D]}; calibration a
    bool mask over the N songs; ratings [n_cal, R, D] and mask [n_cal, R] the calibration
    songs' ratings (padded, as `trial.rating_matrix`)."""
    names = [quantile_param(t) for t in QUANTILE_LEVELS]
    knots = np.stack([params[n] for n in names], axis=-1)  # [K, N, D, m]
    songs = np.nonzero(mask)[0]
    adjusted = np.empty_like(knots)
    for k in range(knots.shape[0]):
        for d in range(knots.shape[2]):
            y = ratings[:, :, d][mask]
            adjusted[k, :, d] = conformalise(knots[k, :, d], calibration, songs, y)
    return {n: adjusted[..., i] for i, n in enumerate(names)}
