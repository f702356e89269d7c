"""Split-half reliability of each song's mean and SD: the ceiling on what any model can
reach against the empirical (noisy) per-song target.

For each repeat, every song's raters are shuffled and cut into two halves (sizes
floor(k/2) and ceil(k/2) for k raters). Across songs, the correlation r between the
half statistics (half means, or half population SDs) estimates how well a statistic
of k/2 raters reproduces itself; the Spearman-Brown prophecy for a doubled test,
rho = 2 r / (1 + r), lifts it to the full rater count. r is averaged over repeats before
the correction. The correlation ceiling sqrt(rho) bounds the expected correlation of any
predictor with the full-panel target (classical test theory: r(x, y) <= sqrt(rel_y)).

Spearman-Brown is exact for the mean of exchangeable raters; for the SD it is the
customary approximation (an SD is not an average of per-rater items), stated as such.

The bootstrap interval resamples songs (with replacement) and recomputes the
repeat-averaged r on the SAME half splits, so it reflects the finite song sample, which
dominates here; each bootstrap replicate is a weighted correlation, computed for all
repeats at once as matrix products of the resampling counts with the half statistics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mer_uq.blas_threads import one_blas_thread
from mer_uq.bootstrap_precision import interval_error
from mer_uq.data.errors import DeamDataError, format_ids
from mer_uq.schema import DIMENSIONS

STATISTICS = ("mean", "sd")


@dataclass(frozen=True)
class ReliabilityEstimate:
    """Split-half reliability of one statistic of one dimension, with its interval."""

    dimension: str
    statistic: str
    split_half_r: float
    reliability: float
    ci_low: float
    ci_high: float
    ceiling: float
    ceiling_ci_low: float
    ceiling_ci_high: float
    n_songs: int
    n_repeats: int
    n_boot: int
    ci_level: float
    # how far either end of the reliability's or the ceiling's interval may move when the
    # bootstrap is rerun with other resamples (95 % Monte Carlo error,
    # mer_uq.bootstrap_precision); NaN without resamples
    ci_error: float = math.nan

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def spearman_brown(r: np.ndarray | float, factor: float = 2.0) -> np.ndarray | float:
    """Reliability of a test ``factor`` times as long as one with reliability r."""
    return factor * r / (1.0 + (factor - 1.0) * r)


def ceiling(reliability: float) -> float:
    """sqrt(reliability), 0 for a non-positive reliability (no shared signal), NaN for an
    undefined one (e.g. the end of an interval that was not computed)."""
    if math.isnan(reliability):
        return math.nan
    return math.sqrt(reliability) if reliability > 0 else 0.0


def _ratings_by_count(ratings: pd.DataFrame, dim: str) -> list[np.ndarray]:
    """Songs grouped by rater count, each group a [songs, k] matrix (song order: sorted
    by song id within each group; groups by ascending k)."""
    ordered = ratings.sort_values("song_id", kind="stable")
    counts = ordered.groupby("song_id", sort=True).size()
    values = ordered[dim].to_numpy(float)
    starts = np.concatenate([[0], np.cumsum(counts.to_numpy())[:-1]])
    groups = []
    for k in np.unique(counts.to_numpy()):
        first = starts[counts.to_numpy() == k]
        groups.append(values[first[:, None] + np.arange(k)[None, :]])
    return groups


# Bounded memory. The half statistics are drawn in blocks of repeats holding about
# HALVES_BLOCK_ENTRIES random keys; the bootstrap's song counts are kept as small
# integers and turned into floats one block of resamples at a time, blocks of about
# BOOT_BLOCK_ENTRIES weights, in whole multiples of BOOT_BLOCK_ROWS resamples. Neither
# changes a number: a generator yields the same stream in blocks as in one call, each
# half statistic is a reduction over one song's raters, and each bootstrap row's products
# are the same BLAS kernel's in blocks of whole 128-row tiles as in one product (tested;
# OpenBLAS on 2 threads runs blocks of 192 or 320 rows several times slower than 256 or
# 384). DEAM-sized data fits one block.
HALVES_BLOCK_ENTRIES = 2**22
BOOT_BLOCK_ENTRIES = 2**22
BOOT_BLOCK_ROWS = 256


def _half_statistics(
    groups: list[np.ndarray], n_repeats: int, rng: np.random.Generator,
    block_entries: int = HALVES_BLOCK_ENTRIES,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """statistic -> (half A, half B), each [n_repeats, n_songs]."""
    n_songs = sum(matrix.shape[0] for matrix in groups)
    halves = {s: (np.empty((n_repeats, n_songs)), np.empty((n_repeats, n_songs)))
              for s in STATISTICS}
    first = 0
    for matrix in groups:
        n_group, k = matrix.shape
        columns = slice(first, first + n_group)
        half = k // 2
        step = max(1, block_entries // (n_group * k))
        offsets = (np.arange(n_group) * k)[:, None]  # song s's raters at s * k + 0..k-1
        for start in range(0, n_repeats, step):
            repeats = slice(start, min(start + step, n_repeats))
            keys = rng.random((repeats.stop - start, n_group, k))
            perm = np.argsort(keys, axis=2)
            del keys
            perm += offsets
            shuffled = np.take(matrix, perm)  # = take_along_axis of each song's raters
            del perm
            for part, block in enumerate((shuffled[..., :half], shuffled[..., half:])):
                # numpy's own mean and population SD, one sum shared: the SD's mean is
                # the same sum / n, then the mean of the squared deviations
                n_half = block.shape[2]
                mean = np.add.reduce(block, axis=2) / n_half
                deviation = block - mean[..., None]
                np.multiply(deviation, deviation, out=deviation)
                halves["mean"][part][repeats, columns] = mean
                halves["sd"][part][repeats, columns] = np.sqrt(
                    np.add.reduce(deviation, axis=2) / n_half)
        first += n_group
    return halves


def _bootstrap_counts(rng: np.random.Generator, n_songs: int, n_boot: int) -> list[np.ndarray]:
    """How often each song is drawn in each bootstrap resample, [resamples, n_songs] in
    blocks of rows (the stream of one draw of all), each block in the narrowest integer
    type that holds it (counts are small: 1 byte per song and resample, not 8)."""
    rows = max(1, BOOT_BLOCK_ENTRIES // n_songs // BOOT_BLOCK_ROWS) * BOOT_BLOCK_ROWS
    uniform = np.full(n_songs, 1.0 / n_songs)
    blocks = []
    for start in range(0, n_boot, rows):
        counts = rng.multinomial(n_songs, uniform, size=min(rows, n_boot - start))
        blocks.append(counts.astype(np.min_scalar_type(counts.max())))
    return blocks


def _weighted_r(weights: np.ndarray | list[np.ndarray], x: np.ndarray, y: np.ndarray
                ) -> np.ndarray:
    """Pearson r of x and y (each [n_repeats, n_songs]) under song weights [n_w, n_songs]
    (one array, or a list of row blocks of it): [n_w, n_repeats]. Weights are
    resampling counts, so this is the bootstrap r. Centring first keeps the raw-moment
    formula free of cancellation for data far from zero."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    xt, yt, xyt, xxt, yyt = x.T, y.T, (x * y).T, (x * x).T, (y * y).T
    blocks = [weights] if isinstance(weights, np.ndarray) else weights
    out = []
    for block in blocks:
        w = block.astype(float)
        total = w.sum(axis=1, keepdims=True)
        mx, my = w @ xt / total, w @ yt / total
        cov = w @ xyt / total - mx * my
        vx = w @ xxt / total - mx * mx
        vy = w @ yyt / total - my * my
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(cov / np.sqrt(vx * vy))
    return np.concatenate(out) if out else np.empty((0, x.shape[0]))


def _interval_error(boot_r: np.ndarray, ci_level: float) -> float:
    """The Monte Carlo error of the printed interval ends: the reliability's (the
    Spearman-Brown-lifted draws) and the ceiling's (their square roots), the larger."""
    reliability = spearman_brown(boot_r)
    ceilings = np.sqrt(np.clip(reliability, 0.0, None))  # ceiling(): 0 at or below 0, NaN kept
    return max(interval_error(reliability, ci_level), interval_error(ceilings, ci_level))


def split_half_reliability(
    ratings: pd.DataFrame,
    n_repeats: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
    ci_level: float = 0.95,
) -> dict[str, dict[str, ReliabilityEstimate]]:
    """Reliability per dimension and statistic ('mean', 'sd') of a long per-rater table
    (song_id, one column per dimension). Every song needs >= 2 raters; with fewer than
    4 a half SD is degenerate (0 for a single rater), so the SD estimate needs more."""
    missing = [c for c in ("song_id", *DIMENSIONS) if c not in ratings.columns]
    if missing:
        raise DeamDataError(f"ratings table lacks column(s) {missing}")
    finite = np.isfinite(ratings[list(DIMENSIONS)].to_numpy(float)).all(axis=1)
    if not finite.all():
        bad = np.unique(ratings["song_id"].to_numpy()[~finite])
        raise DeamDataError(f"ratings table: NaN or inf ratings for song(s) {format_ids(bad)}")
    counts = ratings.groupby("song_id").size()
    if (counts < 2).any():
        few = counts.index[counts < 2].to_numpy()
        raise DeamDataError(
            f"song(s) {format_ids(few)} have fewer than 2 raters; split-half reliability "
            "needs two halves"
        )
    rng = np.random.default_rng(seed)
    n_songs = len(counts)
    boot_weights = _bootstrap_counts(rng, n_songs, n_boot)
    out: dict[str, dict[str, ReliabilityEstimate]] = {}
    with one_blas_thread():  # the bootstrap's matrix products: the same bits anywhere
        for dim in DIMENSIONS:
            halves = _half_statistics(_ratings_by_count(ratings, dim), n_repeats, rng)
            out[dim] = {stat: _estimate(dim, stat, a, b, boot_weights, n_repeats, ci_level)
                        for stat, (a, b) in halves.items()}
    return out


def _estimate(dim: str, stat: str, a: np.ndarray, b: np.ndarray,
              boot_weights: list[np.ndarray], n_repeats: int, ci_level: float
              ) -> ReliabilityEstimate:
    """One statistic's estimate from its two halves (each [n_repeats, n_songs]): the
    repeat-averaged r lifted by Spearman-Brown, and its interval over the resamples."""
    n_songs = a.shape[1]
    n_boot = sum(block.shape[0] for block in boot_weights)
    alpha = (1.0 - ci_level) / 2.0
    r = float(np.nanmean(_weighted_r(np.ones((1, n_songs)), a, b)))
    rel = float(spearman_brown(r))
    lo, hi = math.nan, math.nan  # no resamples asked for (n_boot 0): no interval
    error = math.nan
    if n_boot > 0:
        boot_r = np.nanmean(_weighted_r(boot_weights, a, b), axis=1)
        lo, hi = (float(spearman_brown(q)) for q in np.nanquantile(boot_r, [alpha, 1 - alpha]))
        error = _interval_error(boot_r, ci_level)
    return ReliabilityEstimate(
        dimension=dim, statistic=stat, split_half_r=r, reliability=rel, ci_low=lo, ci_high=hi,
        ceiling=ceiling(rel), ceiling_ci_low=ceiling(lo), ceiling_ci_high=ceiling(hi),
        n_songs=n_songs, n_repeats=n_repeats, n_boot=n_boot, ci_level=ci_level,
        ci_error=error)


def reliability_to_dict(
    rel: dict[str, dict[str, ReliabilityEstimate]],
) -> dict[str, dict[str, dict]]:
    """JSON-ready nested dict: dimension -> statistic -> fields."""
    return {dim: {stat: est.to_dict() for stat, est in stats.items()} for dim, stats in rel.items()}
