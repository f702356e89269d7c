"""How sure are the numbers themselves? Bootstrap over test songs, paired comparisons.

The SD over seeds says how much a number moves with training randomness; it says nothing
about which ~260 songs happened to land in the test split. Resampling songs (with
replacement) answers that. Every row of every table is resampled with the SAME index
matrix, so differences between two rows are paired: the common songs cancel, and a
difference can be significant even when two marginal intervals overlap.

The statistic itself is always computed by mer_uq.metrics (the caller passes it in); this
module only draws indices and summarises the resampled values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from mer_uq.bootstrap_precision import interval_error, resamples_for

DEFAULT_N_BOOT = 1000
DEFAULT_LEVEL = 0.95
# A bootstrap distribution with more undefined (NaN) draws than this is not summarised.
MAX_NAN_FRACTION = 0.5


def resample_indices(n_items: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """[n_boot, n_items] song indices drawn with replacement, reproducible from ``seed``."""
    if n_items < 2 or n_boot < 1:
        raise ValueError(f"need >= 2 items and >= 1 resample, got {n_items}, {n_boot}")
    return np.random.default_rng(seed).integers(0, n_items, size=(n_boot, n_items))


def percentile_interval(values: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Central percentile interval of the finite draws; NaN when too few are defined
    (e.g. the correlation of a constant prediction)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.size < (1.0 - MAX_NAN_FRACTION) * values.size:
        return float("nan"), float("nan")
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


# Beyond this many times the resamples used, the note gives the error alone: a count of
# millions is no advice.
ADVISED_RESAMPLES_FACTOR = 10


def resampling_note(what: str, option: str, n_boot: int, n_items: int,
                    widths: np.ndarray, resolution: float, error: float = math.nan) -> str:
    """One or two sentences for the report: how many resamples ``what``'s intervals used,
    under which option, and how far their ends may move with other resamples (``error``:
    the largest 95 % Monte Carlo error of an end, mer_uq.bootstrap_precision). Where that
    is below half the printed ``resolution``, more resamples cannot change what is shown,
    and the note says how many would still show it; where it is not, how many would fix
    it (up to ADVISED_RESAMPLES_FACTOR times the resamples used). Where every interval is
    narrower than ``resolution`` itself, it says the intervals add nothing at that size.
    The resamples are never cut silently; this says where they are of no use."""
    if n_boot == 0:
        return f"{what}: no bootstrap resamples ({option} 0), so no interval."
    widths = np.asarray(widths, dtype=np.float64)
    text = f"{what}: {n_boot} bootstrap resamples of {n_items} songs ({option})."
    if math.isfinite(error):
        text += " " + _precision_sentence(error, n_boot, resolution, option)
    if widths.size and np.all(np.isfinite(widths)) and float(widths.max()) < resolution:
        text += (f" Every interval is narrower than {resolution:g} (widest "
                 f"{float(widths.max()):.1e}), below the precision printed: at this many "
                 f"songs the resamples cannot change what is shown, and {option} with fewer "
                 f"(0: no interval) saves their time.")
    return text


def _precision_sentence(error: float, n_boot: int, resolution: float, option: str) -> str:
    half_digit = resolution / 2.0
    enough = resamples_for(error, n_boot, half_digit)
    if error < half_digit:
        return (f"Their ends are known to ±{error:.1e} (95 % Monte Carlo error), below half "
                f"the last digit printed: more resamples cannot change what is shown, and "
                f"about {enough} would still show it ({option} {enough}).")
    text = (f"Their ends may move by up to ±{error:.1e} with other resamples (95 % Monte "
            f"Carlo error)")
    if enough <= ADVISED_RESAMPLES_FACTOR * n_boot:
        return text + f"; about {enough} would fix them to half the last digit printed."
    return text + ", more than half the last digit printed."


def interval_errors(draws: Iterable[np.ndarray], level: float = DEFAULT_LEVEL) -> np.ndarray:
    """The 95 % Monte Carlo error of each interval's ends (the larger end), for every cell
    whose draws make an interval (percentile_interval's rule)."""
    return np.array([interval_error(d, level) for d in draws
                     if math.isfinite(percentile_interval(d, level)[0])], dtype=np.float64)


def cells_resampling_note(n_boot: int, n_items: int, errors: np.ndarray, resolution: float
                          ) -> str:
    """The table cells' intervals: their resamples, shared by every row, and in how many of
    them more resamples could not change a printed digit (``errors``: interval_errors)."""
    if n_boot == 0:
        return "No bootstrap intervals (--n-boot 0)."
    text = (f"Intervals: {n_boot} bootstrap resamples of {n_items} test songs (--n-boot), "
            f"shared by every row.")
    if errors.size:
        settled = int(np.sum(errors < resolution / 2.0))
        text += (f" With other resamples the ends of the median interval move by up to "
                 f"±{float(np.median(errors)):.1e} (95 % Monte Carlo error); in {settled} of "
                 f"{errors.size} intervals that is below half the last digit printed.")
    return text


@dataclass(frozen=True)
class PairedComparison:
    """A - B for one metric, with its paired bootstrap interval and two-sided p-value."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_boot: int


def paired_bootstrap(point_a: float, point_b: float, boot_a: np.ndarray, boot_b: np.ndarray,
                     level: float = DEFAULT_LEVEL) -> PairedComparison:
    """Compare two rows resampled on the same song indices.

    p-value: twice the smaller tail of the bootstrap differences around 0 (the percentile
    test), floored at 1 / n_boot because a finite bootstrap cannot resolve less.
    """
    diff = np.asarray(boot_a, dtype=np.float64) - np.asarray(boot_b, dtype=np.float64)
    low, high = percentile_interval(diff, level)
    finite = diff[np.isfinite(diff)]
    if not np.isfinite(low) or finite.size == 0:
        return PairedComparison(point_a - point_b, low, high, float("nan"), int(diff.size))
    tail = min(np.mean(finite <= 0.0), np.mean(finite >= 0.0))
    p_value = float(min(1.0, max(2.0 * tail, 1.0 / finite.size)))
    return PairedComparison(point_a - point_b, low, high, p_value, int(diff.size))


def paired_seed_test(per_seed_a: Mapping[int, float], per_seed_b: Mapping[int, float]
                     ) -> tuple[int, float]:
    """Wilcoxon signed-rank test of A vs B over the seeds both share (seed s of A is paired
    with seed s of B: same split, same initialisation stream). Returns (n_pairs, p);
    p is NaN with fewer than 5 pairs, where the test cannot reach 5 % anyway."""
    common = sorted(set(per_seed_a) & set(per_seed_b))
    a = np.array([per_seed_a[s] for s in common], dtype=np.float64)
    b = np.array([per_seed_b[s] for s in common], dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 5 or np.all(a == b):
        return int(a.size), float("nan")
    # scipy.stats.wilcoxon's p (its defaults) to the last bit, by the one of its three
    # methods it would use (each function answers only its own cases; together they cover
    # all): importing scipy.stats costs more than the whole comparison table
    for method in (signed_rank_exact_p, signed_rank_permutation_p, signed_rank_normal_p):
        p = method(a - b)
        if p is not None:
            return int(a.size), p
    raise AssertionError(f"no signed-rank method for differences {a - b}")  # unreachable


# scipy's wilcoxon (method 'auto') uses the exact null distribution up to 50 pairs.
EXACT_SIGNED_RANK_MAX_N = 50


def signed_rank_exact_p(differences: np.ndarray) -> float | None:
    """Two-sided p of the Wilcoxon signed-rank test from its exact null distribution, or
    None where that does not apply (a zero or tied |difference|, or more than 50 pairs:
    scipy then uses other methods).

    Why not scipy: importing scipy.stats costs more than the whole comparison table. The
    value is scipy's to the last bit: the null distribution counts the subsets of ranks
    1..n by their sum, so every probability is an integer over 2^n, and scipy's
    cumulative sums of such numbers are exact too (tested against scipy).
    """
    d = np.asarray(differences, dtype=np.float64)
    magnitude = np.abs(d)
    if d.size > EXACT_SIGNED_RANK_MAX_N or np.any(d == 0) or np.unique(magnitude).size < d.size:
        return None
    n = d.size
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(magnitude)] = np.arange(1, n + 1)
    r_plus = int(ranks[d > 0].sum())
    counts = np.ones(1, dtype=np.int64)  # subsets of {1..k} by their rank sum
    for k in range(1, n + 1):
        longer = np.zeros(counts.size + k, dtype=np.int64)
        longer[: counts.size] += counts
        longer[k:] += counts
        counts = longer
    at_most, at_least = int(counts[: r_plus + 1].sum()), int(counts[r_plus:].sum())
    return min(1.0, 2 * min(at_most, at_least) / 2.0**n)


# scipy's wilcoxon (method 'auto') with a zero or a tied |difference| runs an exhaustive
# permutation test up to this many pairs, and the normal approximation above it.
PERMUTATION_SIGNED_RANK_MAX_N = 13


def signed_rank_normal_p(differences: np.ndarray) -> float | None:
    """Two-sided p of the Wilcoxon signed-rank test from the normal approximation, as
    scipy's wilcoxon (its defaults: method 'auto', zero_method 'wilcox', no continuity
    correction) gives it wherever it uses that approximation: more than 50 pairs, or more
    than 13 pairs with a zero or a tied |difference|. None elsewhere (the exact and
    permutation cases).

    Why not scipy: seed pairs of a conformal twin and its original differ by rounding
    only, so ties and zeros are common there, and importing scipy.stats costs more than
    the whole comparison table. Zeros are dropped, ties take their average rank, and the
    variance loses sum(t^3 - t) / 2 over tie groups (/ 24), the same operations in the
    same order as scipy's (every term before the square root is an exact integer or half
    integer), so the value is scipy's to the last bit (tested against scipy).
    """
    from scipy.special import ndtr  # scipy.special is light (mer_uq.families loads it)

    d = np.asarray(differences, dtype=np.float64)
    n = d.size
    nonzero = d[d != 0]
    magnitude = np.abs(nonzero)
    untied = np.unique(magnitude).size == magnitude.size
    if n <= PERMUTATION_SIGNED_RANK_MAX_N or nonzero.size == 0 or (
            n <= EXACT_SIGNED_RANK_MAX_N and untied and nonzero.size == n):
        return None
    order = np.argsort(magnitude, kind="stable")
    ordered = magnitude[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ties = np.diff(np.r_[starts, ordered.size]).astype(np.float64)
    ranks = np.empty(nonzero.size, dtype=np.float64)
    ranks[order] = np.repeat(starts + 1 + (ties - 1) / 2, ties.astype(np.int64))
    r_plus = float(np.sum(ranks[nonzero > 0]))  # half integers: exact in any order
    count = float(nonzero.size)
    mean = count * (count + 1.0) * 0.25
    var = count * (count + 1.0) * (2.0 * count + 1.0)
    se = np.sqrt((var - float(np.sum(ties**3 - ties)) / 2) / 24)
    z = (r_plus - mean) / se
    return float(2 * ndtr(-np.abs(z)))


def signed_rank_permutation_p(differences: np.ndarray) -> float | None:
    """Two-sided p of the Wilcoxon signed-rank test from every sign flip, as scipy's
    wilcoxon (its defaults) gives it with a zero or a tied |difference| among at most 13
    pairs (an exhaustive permutation test of the signs); None elsewhere.

    Zeros are dropped from the statistic (their flips leave it unchanged, each doubling
    every count), ties take their average rank. The statistic is a sum of half integers,
    so doubled it is an integer and its null distribution counts subsets of the doubled
    ranks by their sum, exactly; p = 2 min(#{null <= observed}, #{null >= observed}) / 2^n
    capped at 1 (scipy's tolerance around the observed value is far below the 1/2 step
    between values), scipy's value to the last bit (tested against scipy).
    """
    d = np.asarray(differences, dtype=np.float64)
    n = d.size
    nonzero = d[d != 0]
    magnitude = np.abs(nonzero)
    untied = np.unique(magnitude).size == magnitude.size
    if n > PERMUTATION_SIGNED_RANK_MAX_N or nonzero.size == 0 or (
            untied and nonzero.size == n):
        return None
    order = np.argsort(magnitude, kind="stable")
    ordered = magnitude[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ties = np.diff(np.r_[starts, ordered.size])
    doubled = np.empty(nonzero.size, dtype=np.int64)  # 2 x average rank
    doubled[order] = np.repeat(2 * starts + ties + 1, ties)
    observed = int(doubled[nonzero > 0].sum())
    counts = np.ones(1, dtype=np.int64)  # sign patterns of the nonzero ones by their sum
    for rank in doubled:
        longer = np.zeros(counts.size + rank, dtype=np.int64)
        longer[: counts.size] += counts
        longer[rank:] += counts
        counts = longer
    zeros = 2 ** (n - nonzero.size)
    at_most = zeros * int(counts[: observed + 1].sum())
    at_least = zeros * int(counts[observed:].sum())
    return min(1.0, 2 * min(at_most, at_least) / 2.0**n)
