"""Split-conformal calibration of a predicted SD: the quantile against crepes' split
conformal regressor, the scale factor's guarantee, and coverage on synthetic test songs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.compute.conformal_rows import calibrated_rows, conformal_key, original_key
from analysis.compute.rows import CONFORMAL, PAPER, PredictionRow
from mer_uq import metrics, schema
from mer_uq.conformal import (
    conformal_quantile,
    gaussian_quantile,
    normalised_scores,
    scale_factor,
)
from mer_uq.scores import rating_positions
from mer_uq.synthetic import TRUE_MEAN, TRUE_SD, make_synthetic


@pytest.mark.parametrize("n", [7, 50, 333])
@pytest.mark.parametrize("level", [0.5, 0.8, 0.95])
def test_quantile_equals_crepes_split_conformal(n, level):
    crepes = pytest.importorskip("crepes")
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n)
    mu = 0.3 * rng.standard_normal(n)
    sigma = rng.uniform(0.2, 2.0, n)
    q = conformal_quantile(normalised_scores(y, mu, sigma), level)
    regressor = crepes.ConformalRegressor().fit(y - mu, sigmas=sigma)
    low, high = regressor.predict_int(np.zeros(1), sigmas=np.ones(1), confidence=level)[0]
    assert q == pytest.approx(high, rel=1e-12, abs=0)
    assert -q == pytest.approx(low, rel=1e-12, abs=0)


def test_quantile_rank_and_too_few_scores():
    scores = np.array([0.4, 0.1, 0.3, 0.2])
    assert conformal_quantile(scores, 0.5) == 0.3  # ceil(5 * 0.5) = 3rd smallest
    assert conformal_quantile(scores, 0.8) == 0.4  # ceil(5 * 0.8) = 4th
    assert conformal_quantile(scores, 0.95) == math.inf  # ceil(5 * 0.95) = 5 > n
    with pytest.raises(ValueError, match="level"):
        conformal_quantile(scores, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        normalised_scores(np.zeros(2), np.zeros(2), np.array([1.0, 0.0]))


def test_scaled_sigma_interval_is_the_conformal_interval():
    rng = np.random.default_rng(1)
    y, mu, sigma = rng.standard_normal(101), np.zeros(101), np.full(101, 0.25)
    c = scale_factor(y, mu, sigma, 0.8)
    # N(mu, (c sigma)^2)'s central 80 % interval holds exactly the calibration scores up
    # to the conformal rank: ceil(102 * 0.8) = 82 of 101.
    assert metrics.interval_coverage(y, mu, c * sigma * (1 + 1e-12), 0.8) == 82 / 101
    assert c * gaussian_quantile(0.8) == pytest.approx(np.sort(np.abs(y) / 0.25)[81])


def _oracle_row(dataset, song_ids, key, scale):
    """mu = the latent song mean, sigma = scale x the latent SD: miscalibrated on purpose."""
    by_song = dataset.songs.set_index("song_id").loc[song_ids]
    mu = {d: by_song[TRUE_MEAN[d]].to_numpy()[None, :] for d in schema.DIMENSIONS}
    sigma = {d: scale * by_song[TRUE_SD[d]].to_numpy()[None, :] for d in schema.DIMENSIONS}
    return PredictionRow(key, "Oracle", PAPER, key, single=False, seeds=(0,), mu=mu,
                         sigma=sigma)


@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_coverage_on_synthetic_test_songs_within_binomial_noise(scale):
    dataset, _ = make_synthetic(n_songs=2000, n_features=8, n_raters=5, seed=3)
    valid_ids, test_ids = dataset.song_ids("valid"), dataset.song_ids("test")
    test_row = _oracle_row(dataset, test_ids, "oracle", scale)
    valid_row = _oracle_row(dataset, valid_ids, "oracle", scale)
    twins, factors = calibrated_rows([test_row], [valid_row], dataset.ratings, valid_ids)
    (twin,) = twins
    assert twin.key == conformal_key("oracle") and original_key(twin.key) == "oracle"
    assert twin.group == CONFORMAL and len(factors) == len(schema.DIMENSIONS)
    index, values = rating_positions(dataset.ratings, test_ids)
    n = index.size
    for dim in schema.DIMENSIONS:
        mu, sigma = twin.mu[dim][0][index], twin.sigma[dim][0][index]
        before = metrics.interval_coverage(values[dim], mu, test_row.sigma[dim][0][index], 0.8)
        after = metrics.interval_coverage(values[dim], mu, sigma, 0.8)
        assert abs(before - 0.8) > 0.1  # the miscalibration is real
        assert abs(after - 0.8) <= 3.5 * math.sqrt(0.8 * 0.2 / n), (dim, after, n)
        # the mean is untouched and the SD only rescaled: its correlations stay
        np.testing.assert_array_equal(twin.mu[dim], test_row.mu[dim])
        assert metrics.pearson_r(twin.sigma[dim][0], test_row.sigma[dim][0]) == pytest.approx(1)


def test_rows_without_spread_or_validation_twin_are_not_calibrated():
    dataset, _ = make_synthetic(n_songs=100, n_features=4, n_raters=3, seed=0)
    valid_ids, test_ids = dataset.song_ids("valid"), dataset.song_ids("test")
    row = _oracle_row(dataset, test_ids, "oracle", 1.0)
    no_spread = _oracle_row(dataset, test_ids, "mean_only", 1.0)
    no_spread.sigma = {d: np.full_like(v, np.nan) for d, v in no_spread.sigma.items()}
    twins, factors = calibrated_rows([row, no_spread], [], dataset.ratings, valid_ids)
    assert twins == [] and factors.empty
    assert any("no conformal calibration" in note for note in row.notes)
    assert isinstance(factors, pd.DataFrame)
    no_ratings = dataset.ratings.iloc[:0]
    twins, _ = calibrated_rows([row], [row], no_ratings, valid_ids)
    assert twins == [] and "no individual ratings" in row.notes[-1]
