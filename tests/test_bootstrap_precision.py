"""The Monte Carlo error of a bootstrap percentile interval's ends
(mer_uq.bootstrap_precision) against the closed form for a smooth density and against
the spread of the ends over independent reruns, and the report's sentences built on it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.compute.bootstrap import cells_resampling_note, interval_errors, resampling_note
from mer_uq.bootstrap_precision import (
    Z_95,
    interval_error,
    percentile_end_errors,
    resamples_for,
)
from mer_uq.data.reliability import split_half_reliability
from mer_uq.schema import DIMENSIONS

LEVEL = 0.95


def test_end_errors_match_the_normal_closed_form() -> None:
    """For N(0, 1) draws the p-quantile's standard error is sqrt(p (1 - p) / B) / phi(z_p);
    the order-statistic estimate, averaged over many samples, agrees within a few %."""
    rng = np.random.default_rng(0)
    n = 4000
    estimates = np.array([percentile_end_errors(rng.standard_normal(n), LEVEL)
                          for _ in range(200)])
    for column, p in enumerate((0.025, 0.975)):
        closed = math.sqrt(p * (1 - p) / n) / stats.norm.pdf(stats.norm.ppf(p))
        assert estimates[:, column].mean() == pytest.approx(closed, rel=0.06)


def test_end_errors_match_the_spread_over_reruns() -> None:
    """The estimate from ONE set of draws predicts how far the ends move when the draws
    are made again (skewed draws: a gamma, where no normal formula applies)."""
    rng = np.random.default_rng(1)
    n = 1000
    reruns = np.array([np.quantile(rng.gamma(2.0, size=n), [0.025, 0.975])
                       for _ in range(2000)])
    estimate = np.array([percentile_end_errors(rng.gamma(2.0, size=n), LEVEL)
                         for _ in range(200)]).mean(axis=0)
    np.testing.assert_allclose(estimate, reruns.std(axis=0), rtol=0.1)


def test_interval_error_scale_and_resamples_for() -> None:
    draws = np.random.default_rng(2).standard_normal(1000)
    assert interval_error(draws, LEVEL) == Z_95 * max(percentile_end_errors(draws, LEVEL))
    assert interval_error(3.0 * draws, LEVEL) == pytest.approx(3 * interval_error(draws, LEVEL))
    assert resamples_for(0.002, 1000, 0.001) == 4000  # error ~ 1 / sqrt(resamples)
    assert resamples_for(0.0005, 1000, 0.001) == 250
    assert math.isnan(interval_error(np.array([1.0, np.nan]), LEVEL))


def test_reliability_records_its_interval_error() -> None:
    """split_half_reliability's ci_error: NaN without resamples, and shrinking as
    1 / sqrt(resamples) (4x the resamples: about half the error)."""
    rng = np.random.default_rng(3)
    songs = np.repeat(np.arange(300), 6)  # 6 raters each: song effect + rater noise
    ratings = pd.DataFrame({"song_id": songs, **{
        dim: rng.standard_normal(300)[songs] + 1.5 * rng.standard_normal(songs.size)
        for dim in DIMENSIONS}})
    few = split_half_reliability(ratings, n_repeats=10, n_boot=400, seed=0)
    many = split_half_reliability(ratings, n_repeats=10, n_boot=1600, seed=0)
    none = split_half_reliability(ratings, n_repeats=10, n_boot=0, seed=0)
    ratio = few["valence"]["mean"].ci_error / many["valence"]["mean"].ci_error
    assert 1.4 < ratio < 2.8
    assert math.isnan(none["valence"]["mean"].ci_error)


def test_notes_say_whether_more_resamples_could_show() -> None:
    known = resampling_note("X", "--opt", 1000, 100000, np.array([0.004]), 1e-3, 2e-4)
    assert "known to ±2.0e-04" in known and "about 160 would still show it (--opt 160)" in known
    loose = resampling_note("X", "--opt", 1000, 2000, np.array([0.02]), 1e-3, 8e-4)
    assert "may move by up to ±8.0e-04" in loose and "about 2560 would fix them" in loose
    hopeless = resampling_note("X", "--opt", 1000, 200, np.array([0.2]), 1e-3, 0.02)
    assert "more than half the last digit printed" in hopeless and "about" not in hopeless
    cells = cells_resampling_note(1000, 300, np.array([1e-4, 3e-4, 2e-3]), 1e-3)
    assert "1000 bootstrap resamples of 300 test songs" in cells
    assert "±3.0e-04" in cells and "in 2 of 3 intervals" in cells
    assert cells_resampling_note(0, 300, np.array([]), 1e-3).startswith("No bootstrap")
    draws = [np.random.default_rng(4).standard_normal(1000), np.full(1000, np.nan)]
    assert interval_errors(draws).size == 1  # a cell without an interval has no error
