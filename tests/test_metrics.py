"""Metrics against independent references: scipy.stats, torch, numerical integration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from mer_uq import metrics


@pytest.fixture
def sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    mu = rng.uniform(-0.8, 0.8, 200)
    sigma = rng.uniform(0.05, 0.5, 200)
    y = mu + sigma * rng.standard_normal(200) * 1.3
    return y, mu, sigma


def test_r2_matches_definition_and_can_be_negative(sample) -> None:
    y, mu, _ = sample
    expected = 1 - np.sum((y - mu) ** 2) / np.sum((y - y.mean()) ** 2)
    assert metrics.r2_score(y, mu) == pytest.approx(expected, rel=1e-12)
    assert metrics.r2_score(y, y) == pytest.approx(1.0)
    assert metrics.r2_score(y, -y + 5.0) < 0


def test_correlations_match_scipy(sample) -> None:
    y, mu, sigma = sample
    assert metrics.pearson_r(y, mu) == pytest.approx(stats.pearsonr(y, mu)[0], abs=1e-12)
    ties = np.round(sigma, 1)  # many ties: average ranks must match scipy
    assert metrics.spearman_rho(ties, y) == pytest.approx(stats.spearmanr(ties, y)[0], abs=1e-12)


@pytest.mark.parametrize("n_distinct", [1, 2, 7, 1000])
@pytest.mark.parametrize("n", [1, 2, 5, 260])
def test_average_ranks_equal_scipy_rankdata_exactly(n: int, n_distinct: int) -> None:
    values = np.random.default_rng(n * n_distinct).integers(0, n_distinct, n) / 3.0 - 1.0
    np.testing.assert_array_equal(metrics.average_ranks(values), stats.rankdata(values))


def test_correlation_with_constant_is_nan() -> None:
    assert np.isnan(metrics.pearson_r([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(metrics.spearman_rho([1.0, 2.0, 3.0], [0.2, 0.2, 0.2]))


def test_gaussian_nll_matches_scipy_and_torch(sample) -> None:
    y, mu, sigma = sample
    expected = -np.mean(stats.norm.logpdf(y, mu, sigma))
    assert metrics.gaussian_nll(y, mu, sigma) == pytest.approx(expected, rel=1e-10)
    torch_loss = torch.nn.GaussianNLLLoss(full=True, eps=0.0)(
        torch.tensor(mu), torch.tensor(y), torch.tensor(sigma**2)
    )
    assert metrics.gaussian_nll(y, mu, sigma) == pytest.approx(float(torch_loss), rel=1e-10)


def test_crps_matches_numerical_integration() -> None:
    # CRPS(F, y) = integral of (F(x) - 1{x >= y})^2 dx
    for y, mu, sigma in [(0.3, 0.0, 0.2), (-0.9, 0.4, 0.1), (0.1, 0.1, 0.7)]:
        below, _ = integrate.quad(lambda x, m=mu, s=sigma: stats.norm.cdf(x, m, s) ** 2, -10, y)
        above, _ = integrate.quad(lambda x, m=mu, s=sigma: stats.norm.sf(x, m, s) ** 2, y, 10)
        assert metrics.crps_gaussian([y], [mu], [sigma]) == pytest.approx(below + above, rel=1e-7)


def test_crps_is_mean_over_samples(sample) -> None:
    y, mu, sigma = sample
    each = [metrics.crps_gaussian([a], [b], [c]) for a, b, c in zip(y, mu, sigma, strict=True)]
    assert metrics.crps_gaussian(y, mu, sigma) == pytest.approx(np.mean(each), rel=1e-12)


def test_coverage_matches_scipy_interval(sample) -> None:
    y, mu, sigma = sample
    for level in (0.5, 0.8, 0.95):
        lo, hi = stats.norm.interval(level, loc=mu, scale=sigma)
        expected = np.mean((y >= lo) & (y <= hi))
        assert metrics.interval_coverage(y, mu, sigma, level) == pytest.approx(expected)


def test_coverage_of_calibrated_gaussian_is_near_level() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    mu = rng.uniform(-1, 1, n)
    sigma = rng.uniform(0.1, 0.4, n)
    y = rng.normal(mu, sigma)
    expected, observed = metrics.calibration_curve(y, mu, sigma)
    np.testing.assert_allclose(observed, expected, atol=0.005)


def test_calibration_curve_equals_coverage_per_level(sample) -> None:
    y, mu, sigma = sample
    levels = (0.2, 0.5, 0.9)
    expected, observed = metrics.calibration_curve(y, mu, sigma, levels)
    np.testing.assert_array_equal(expected, levels)
    for level, obs in zip(levels, observed, strict=True):
        assert obs == metrics.interval_coverage(y, mu, sigma, level)


def test_overconfident_prediction_undercovers(sample) -> None:
    y, mu, sigma = sample  # y was drawn with 1.3 x sigma
    assert metrics.interval_coverage(y, mu, sigma, 0.9) < 0.85


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.r2_score([1.0, 2.0], [1.0]), "same length"),
        (lambda: metrics.r2_score([1.0, 1.0], [1.0, 2.0]), "constant"),
        (lambda: metrics.pearson_r([1.0, np.nan], [1.0, 2.0]), "x has a non-finite"),
        (lambda: metrics.gaussian_nll([0.0], [0.0], [0.0]), "sigma must be > 0"),
        (lambda: metrics.crps_gaussian([[0.0]], [[0.0]], [[1.0]]), "1-D"),
        (lambda: metrics.interval_coverage([0.0], [0.0], [1.0], 1.0), "level"),
    ],
)
def test_bad_input_names_the_problem(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()
