"""mer_uq.scores: every per-split score of a prediction table, against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mer_uq.prediction import prediction_frame
from mer_uq.schema import DIMENSIONS, TARGET_MEAN, TARGET_SD
from mer_uq.scores import RATING_SCORES, SplitTargets, prediction_scores, score_split


def _data(n_songs: int = 12, n_raters: int = 5):
    rng = np.random.default_rng(3)
    ids = np.arange(100, 100 + n_songs)
    ratings = pd.DataFrame({"song_id": np.repeat(ids, n_raters)})
    songs = pd.DataFrame({"song_id": ids})
    for dim in DIMENSIONS:
        ratings[dim] = rng.uniform(-0.8, 0.8, ids.size * n_raters)
        grouped = ratings.groupby("song_id")[dim]
        songs[TARGET_MEAN[dim]] = grouped.mean().to_numpy()
        songs[TARGET_SD[dim]] = grouped.std(ddof=0).to_numpy()
    mu = rng.uniform(-0.5, 0.5, (2, n_songs, 2))
    sigma = rng.uniform(0.1, 0.4, (2, n_songs, 2))
    predictions = pd.concat([
        prediction_frame(ids, np.full(n_songs, "test", dtype=object), "nll", (0, 1), mu, sigma),
        prediction_frame(ids, np.full(n_songs, "test", dtype=object), "seeds", (0, 1), mu, None),
    ], ignore_index=True)
    return songs, ratings, predictions, mu, sigma


def test_scores_of_one_prediction_match_scipy() -> None:
    songs, ratings, _, mu, sigma = _data()
    targets = SplitTargets.of(songs, ratings, songs["song_id"].to_numpy())
    m, s = mu[0, :, 0], sigma[0, :, 0]
    found = prediction_scores(targets, "valence", m, s)
    mean, sd = songs["valence_mean"].to_numpy(), songs["valence_sd"].to_numpy()
    assert found["mean_r2"] == pytest.approx(1 - np.sum((mean - m) ** 2)
                                             / np.sum((mean - mean.mean()) ** 2))
    assert found["mean_pearson"] == pytest.approx(stats.pearsonr(mean, m)[0])
    assert found["sd_spearman"] == pytest.approx(stats.spearmanr(sd, s)[0])
    song = np.repeat(np.arange(mean.size), 5)  # ratings are grouped by song, 5 each
    y = ratings["valence"].to_numpy()
    assert found["rating_nll"] == pytest.approx(-stats.norm.logpdf(y, m[song], s[song]).mean())
    low, high = stats.norm.interval(0.8, m[song], s[song])
    assert found["rating_coverage_80"] == pytest.approx(np.mean((y >= low) & (y <= high)))
    assert [k for k in found if k.startswith("rating_")] == [f"rating_{n}" for n in RATING_SCORES]


def test_score_split_means_over_seeds_and_skips_what_has_no_spread() -> None:
    songs, ratings, predictions, mu, sigma = _data()
    scores = score_split(predictions, songs, ratings, "test")
    targets = SplitTargets.of(songs, ratings, songs["song_id"].to_numpy())
    per_seed = [prediction_scores(targets, "arousal", mu[k, :, 1], sigma[k, :, 1])["sd_r2"]
                for k in range(2)]
    assert scores["test/nll/arousal/sd_r2"] == pytest.approx(np.mean(per_seed))
    assert "test/seeds/valence/mean_spearman" in scores
    assert not any(k.startswith("test/seeds/valence/sd_") for k in scores)  # sigma NaN
    assert score_split(predictions, songs, ratings, "valid") == {}
