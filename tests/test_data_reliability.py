"""Split-half reliability on fabricated rater tables whose true reliability is known in
closed form, plus its building blocks against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mer_uq.data import DeamDataError, load_deam, reliability, split_half_reliability
from mer_uq.data.reliability import _half_statistics, _weighted_r, ceiling, spearman_brown
from mer_uq.schema import DIMENSIONS


def fabricate(
    n_songs: int, n_raters: int, true_sd: float, noise_sd: np.ndarray | float, seed: int
) -> pd.DataFrame:
    """rating = song's true mean + rater noise, for both dimensions (independent)."""
    rng = np.random.default_rng(seed)
    noise = np.broadcast_to(np.asarray(noise_sd, dtype=float), (n_songs,))
    table = {
        "song_id": np.repeat(np.arange(n_songs), n_raters),
        "rater": np.tile([f"r{i}" for i in range(n_raters)], n_songs),
    }
    for dim in DIMENSIONS:
        truth = rng.normal(0.0, true_sd, n_songs)
        table[dim] = np.repeat(truth, n_raters) + np.repeat(noise, n_raters) * rng.standard_normal(
            n_songs * n_raters
        )
    return pd.DataFrame(table)


def test_spearman_brown_closed_form():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.0) == 0.0 and spearman_brown(1.0) == 1.0
    assert ceiling(0.81) == pytest.approx(0.9) and ceiling(-0.1) == 0.0


def test_weighted_r_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3, 50))
    y = y + x
    weights = rng.integers(0, 4, size=(2, 50)).astype(float)
    got = _weighted_r(weights, x, y)
    for w in range(2):
        for rep in range(3):
            idx = np.repeat(np.arange(50), weights[w].astype(int))
            assert got[w, rep] == pytest.approx(stats.pearsonr(x[rep, idx], y[rep, idx])[0])


def test_reliability_in_blocks_equals_one_block(monkeypatch: pytest.MonkeyPatch):
    """Blocks of repeats and of bootstrap resamples (bounded memory) change no number:
    the same random stream, the same half statistics, the same products per resample.
    Mixed rater counts make several groups; 600 resamples make 3 blocks of 256 rows."""
    ratings = fabricate(700, 6, 1.0, 1.5, seed=4)
    ratings = ratings[~((ratings["song_id"] % 3 == 0) & (ratings["rater"] == "r5"))]
    whole = split_half_reliability(ratings, n_repeats=30, n_boot=600, seed=2)
    monkeypatch.setattr(reliability, "HALVES_BLOCK_ENTRIES", 700 * 6 * 4)
    monkeypatch.setattr(reliability, "BOOT_BLOCK_ENTRIES", 1)
    blocked = split_half_reliability(ratings, n_repeats=30, n_boot=600, seed=2)
    for dim in DIMENSIONS:
        for stat in ("mean", "sd"):
            assert blocked[dim][stat] == whole[dim][stat]


def test_half_statistics_are_numpys_mean_and_sd_of_each_shuffled_half():
    """The half statistics (one shared sum, flat gather) are numpy's mean and population
    std of each song's shuffled raters, bit for bit, with rater counts from 2 to 39 (half
    sizes on both sides of numpy's 8-way unrolled sums) and several blocks of repeats."""
    rng = np.random.default_rng(5)
    groups = [np.round(rng.normal(size=(int(rng.integers(1, 40)), k)) * 3, 1)
              for k in (2, 3, 10, 17, 39)]
    for block_entries in (10**9, 300):
        got = _half_statistics(groups, 9, np.random.default_rng(1), block_entries)
        stream = np.random.default_rng(1)
        first = 0
        for matrix in groups:
            n_group, k = matrix.shape
            step = max(1, block_entries // (n_group * k))
            for start in range(0, 9, step):
                stop = min(start + step, 9)
                perm = np.argsort(stream.random((stop - start, n_group, k)), axis=2)
                shuffled = np.take_along_axis(np.broadcast_to(matrix, perm.shape), perm, axis=2)
                for part, half in enumerate((shuffled[..., :k // 2], shuffled[..., k // 2:])):
                    cols = slice(first, first + n_group)
                    np.testing.assert_array_equal(got["mean"][part][start:stop, cols],
                                                  half.mean(axis=2))
                    np.testing.assert_array_equal(got["sd"][part][start:stop, cols],
                                                  half.std(axis=2))
            first += n_group


def test_no_resamples_no_interval():
    """--reliability-boot 0: the point estimate, and an interval that is missing (NaN),
    never a made-up one (the ceiling of a missing end is missing, not 0). (The point
    estimate is not the one with resamples: the resamples are drawn first from the same
    generator, so the half splits differ.)"""
    ratings = fabricate(60, 4, 1.0, 1.0, seed=6)
    without = split_half_reliability(ratings, n_repeats=10, n_boot=0, seed=1)
    for dim in DIMENSIONS:
        est = without[dim]["mean"]
        assert 0.5 < est.reliability < 1.0 and est.ceiling == np.sqrt(est.reliability)
        assert np.isnan([est.ci_low, est.ci_high, est.ceiling_ci_low, est.ceiling_ci_high]).all()


@pytest.mark.parametrize("true_sd, noise_sd", [(1.0, 2.0), (1.0, 1.0), (0.5, 2.5)])
def test_mean_reliability_recovers_closed_form(true_sd: float, noise_sd: float):
    n = 10
    expected = true_sd**2 / (true_sd**2 + noise_sd**2 / n)
    ratings = fabricate(1500, n, true_sd, noise_sd, seed=1)
    rel = split_half_reliability(ratings, n_repeats=50, n_boot=200, seed=0)
    for dim in DIMENSIONS:
        est = rel[dim]["mean"]
        assert est.reliability == pytest.approx(expected, abs=0.04)
        assert est.ci_low < expected < est.ci_high
        assert est.ceiling == pytest.approx(np.sqrt(est.reliability))
        assert est.n_songs == 1500


def test_sd_reliability_near_zero_for_pure_noise():
    """Every song has the same rater noise: its empirical SD carries no song signal."""
    ratings = fabricate(1500, 10, 1.0, 1.0, seed=2)
    rel = split_half_reliability(ratings, n_repeats=50, n_boot=200, seed=0)
    for dim in DIMENSIONS:
        est = rel[dim]["sd"]
        assert abs(est.reliability) < 0.1
        assert est.ci_low < 0.0 < est.ci_high


def test_sd_reliability_high_when_spread_differs_between_songs():
    noise = np.random.default_rng(5).uniform(0.2, 3.0, 1500)
    rel = split_half_reliability(
        fabricate(1500, 10, 1.0, noise, seed=3), n_repeats=30, n_boot=100, seed=0
    )
    assert all(rel[dim]["sd"].reliability > 0.7 for dim in DIMENSIONS)


def test_same_seed_same_result_and_seed_matters():
    ratings = fabricate(300, 10, 1.0, 2.0, seed=4)
    a = split_half_reliability(ratings, n_repeats=20, n_boot=50, seed=0)
    b = split_half_reliability(ratings, n_repeats=20, n_boot=50, seed=0)
    c = split_half_reliability(ratings, n_repeats=20, n_boot=50, seed=1)
    assert a == b
    assert a["valence"]["mean"].reliability != c["valence"]["mean"].reliability


def test_unequal_rater_counts_are_handled():
    """Songs with 10 and 20 raters (as in DEAM) are grouped by count, not padded."""
    ten = fabricate(800, 10, 1.0, 2.0, seed=6)
    twenty = fabricate(800, 20, 1.0, 2.0, seed=7).assign(song_id=lambda f: f["song_id"] + 800)
    rel = split_half_reliability(pd.concat([ten, twenty]), n_repeats=30, n_boot=100, seed=0)
    lo, hi = 1 / (1 + 4 / 10), 1 / (1 + 4 / 20)
    assert lo - 0.04 < rel["valence"]["mean"].reliability < hi + 0.04


def test_too_few_raters_named():
    ratings = fabricate(5, 2, 1.0, 1.0, seed=0)
    ratings = ratings[~((ratings["song_id"] == 3) & (ratings["rater"] == "r1"))]
    with pytest.raises(DeamDataError, match=r"song\(s\) 3 have fewer than 2 raters"):
        split_half_reliability(ratings, n_repeats=2, n_boot=2)


def test_real_deam_ceilings(real_deam):
    """Measured on the real per-rater table (docs/data.md): means are reliable, SDs not."""
    rel = split_half_reliability(load_deam(real_deam).ratings, n_repeats=50, n_boot=200)
    for dim in DIMENSIONS:
        assert 0.7 < rel[dim]["mean"].reliability < 0.9
        assert rel[dim]["sd"].reliability < 0.2


def test_nan_ratings_named():
    ratings = fabricate(5, 4, 1.0, 1.0, seed=0)
    ratings.loc[ratings["song_id"] == 2, "arousal"] = np.nan
    with pytest.raises(DeamDataError, match=r"NaN or inf ratings for song\(s\) 2"):
        split_half_reliability(ratings, n_repeats=2, n_boot=2)
