"""Split-conformal calibration of a predicted SD (numpy only: the analysis imports it).

A method's sigma_hat rarely has the raters' scale (Table 3's R² << 0): its central
intervals mu ± z sigma cover far fewer (or more) individual ratings than nominal. Split
conformal prediction (Vovk et al., 2005; Papadopoulos et al., 2002; Lei et al., 2018) with
the normalised nonconformity score |y - mu| / sigma fixes this on held-out data:

* on the calibration songs (the validation split) every individual rating y of a song
  gets the score s = |y - mu| / sigma under that song's prediction;
* the ceil((n + 1) level)-th smallest of the n scores, q, makes mu ± q sigma cover a new
  exchangeable rating with probability >= level (Angelopoulos & Bates, 2023);
* ONE scale factor c = q / z_level, with z_level the Gaussian central-interval quantile,
  turns N(mu, sigma²) into N(mu, (c sigma)²), whose central `level` interval is exactly
  mu ± q sigma. The other levels' intervals then cover at their nominal rates only as far
  as the normalised residuals are Gaussian in shape: the report shows all three.

One factor per (method, member, dimension) leaves every correlation of the SD (Table 3's
Pearson and Spearman) unchanged, and changes its R² and every proper score: calibration
fixes the SCALE of a spread, never its ranking of songs.

The ratings of one song are not exchangeable with each other (they share the song), but
songs are: the guarantee is for a rating of a new song drawn like the calibration songs,
marginally over songs, which is what the coverage of the test ratings measures.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

DEFAULT_LEVEL = 0.8  # the level the factor is fitted at (the report's headline interval)


def normalised_scores(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """|y - mu| / sigma for each rating (mu and sigma given per rating)."""
    y, mu, sigma = (np.asarray(a, dtype=np.float64) for a in (y, mu, sigma))
    if not (y.shape == mu.shape == sigma.shape) or y.ndim != 1:
        raise ValueError(f"y, mu, sigma must be 1-D of one length, got {y.shape}, "
                         f"{mu.shape}, {sigma.shape}")
    if not (np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
        raise ValueError("sigma must be finite and > 0 to calibrate")
    return np.abs(y - mu) / sigma


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) level)-th smallest score, or +inf
    when n is too small for that level (no finite interval has the guarantee)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    scores = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if scores.size == 0:
        raise ValueError("no calibration scores")
    rank = math.ceil((scores.size + 1) * level)
    return float(scores[rank - 1]) if rank <= scores.size else math.inf


def gaussian_quantile(level: float) -> float:
    """z with P(|Z| <= z) = level for a standard normal Z."""
    return float(ndtri(0.5 + 0.5 * level))


def scale_factor(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                 level: float = DEFAULT_LEVEL) -> float:
    """The factor c for which N(mu, (c sigma)²)'s central `level` interval is the
    split-conformal interval mu ± q sigma on the calibration ratings (y, mu, sigma)."""
    return conformal_quantile(normalised_scores(y, mu, sigma), level) / gaussian_quantile(level)
