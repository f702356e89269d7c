"""How precisely a finite bootstrap knows its own percentile interval.

A percentile interval from B resamples is itself random: rerun the bootstrap with other
resamples and its ends move. With many songs the interval is narrow and its ends settle
after few resamples, so 1,000 resamples of 100,000 songs can pin the ends far below the
digits a report prints, time that buys nothing; with few songs the same 1,000 can leave
the third decimal uncertain. The report says which, from the draws it already has.

The estimate is distribution-free, from order statistics: the number of draws below the
true p-quantile is Binomial(B, p), so the quantiles at p +/- sqrt(p (1 - p) / B) bracket
one standard error of the p-quantile estimate in rank space, and half the distance
between them is its standard error (the order-statistic confidence interval for a
quantile: Conover, *Practical Nonparametric Statistics*, 3rd ed., 1999, sec. 3.2). It
agrees with the closed form sqrt(p (1 - p) / B) / f(q_p) where the density f is smooth
(tested against the normal's) without estimating f.
"""

from __future__ import annotations

import math

import numpy as np

# 95 % of reruns with fresh resamples land within this many standard errors.
Z_95 = 1.959963984540054


def percentile_end_errors(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The Monte Carlo standard error of the lower and upper end of the central ``level``
    percentile interval of the finite ``draws`` (NaN with fewer than 2 finite draws)."""
    values = np.asarray(draws, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0
    errors = []
    for p in (tail, 1.0 - tail):
        step = math.sqrt(p * (1.0 - p) / finite.size)
        below, above = np.quantile(finite, [max(p - step, 0.0), min(p + step, 1.0)])
        errors.append(float(above - below) / 2.0)
    return errors[0], errors[1]


def interval_error(draws: np.ndarray, level: float) -> float:
    """The larger of the two ends' Monte Carlo errors at 95 % (1.96 standard errors):
    how far either end of the interval may move when the bootstrap is rerun."""
    return Z_95 * max(percentile_end_errors(draws, level))


def resamples_for(error: float, n_boot: int, target: float) -> int:
    """How many resamples would bring a Monte Carlo ``error`` seen with ``n_boot``
    resamples down to ``target`` (the error shrinks as 1 / sqrt(resamples))."""
    # rounded first: 1000 * (2e-4 / 5e-4) ** 2 is 160.00000000000003 in floating point
    return max(1, math.ceil(round(n_boot * (error / target) ** 2, 6)))
