"""The synthetic benchmark: DEAM-shaped, known SD, and the positive control it exists for."""

from __future__ import annotations

import numpy as np
import pytest

from mer_uq import metrics
from mer_uq.model import FCNConfig
from mer_uq.schema import DIMENSIONS, SPLITS, TARGET_MEAN, TARGET_SD
from mer_uq.synthetic import TRUE_SD, make_synthetic
from mer_uq.training import TrainConfig
from mer_uq.trial import TrialSpec, run_trial

CONTROL_MODEL = FCNConfig(hidden_width=64)
CONTROL_TRAIN = TrainConfig(epochs=8, steps_per_epoch=32)


@pytest.fixture(scope="module")
def strong():
    return make_synthetic(n_songs=800, n_features=16, sd_strength=2.0, seed=1)


def test_deam_shaped_tables() -> None:
    dataset, features = make_synthetic(n_songs=200, n_features=12, seed=3)
    songs, ratings = dataset.songs, dataset.ratings
    assert features.matrix.shape == (200, 12) and features.matrix.dtype == np.float32
    np.testing.assert_array_equal(features.song_ids, songs["song_id"])
    assert set(songs["split"]) == set(SPLITS)
    assert (songs["split"] == "train").mean() == pytest.approx(0.7, abs=0.01)
    assert len(ratings) == 200 * 10 and (songs["n_raters"] == 10).all()
    for dim in DIMENSIONS:
        raw = ratings[dim].to_numpy() * 5 + 5  # back on the 1..9 scale: integers
        assert np.all(raw == np.rint(raw)) and raw.min() >= 1 and raw.max() <= 9
        per_song = ratings.groupby("song_id")[dim]
        np.testing.assert_allclose(songs[TARGET_MEAN[dim]], per_song.mean().to_numpy(), atol=1e-12)
        np.testing.assert_allclose(
            songs[TARGET_SD[dim]], per_song.std(ddof=0).to_numpy(), atol=1e-12
        )
    assert len(dataset.song_ids("test")) == (songs["split"] == "test").sum()


def test_reproducible_and_strength_knob() -> None:
    a, _ = make_synthetic(n_songs=100, seed=5)
    b, _ = make_synthetic(n_songs=100, seed=5)
    assert a.songs.equals(b.songs) and a.ratings.equals(b.ratings)
    flat, _ = make_synthetic(n_songs=300, sd_strength=0.0, seed=5)
    steep, _ = make_synthetic(n_songs=300, sd_strength=2.0, seed=5)
    assert np.ptp(flat.songs[TRUE_SD["valence"]]) == 0.0
    assert steep.songs[TRUE_SD["valence"]].std() > 0.1
    # the empirical SD tracks the latent one when the signal is strong
    assert metrics.pearson_r(steep.songs[TRUE_SD["valence"]], steep.songs["valence_sd"]) > 0.8
    with pytest.raises(ValueError, match="sd_strength"):
        make_synthetic(sd_strength=-1.0)


def _sigma_recovery(dataset, features, training: str) -> list[float]:
    result = run_trial(
        TrialSpec(training, seeds=(0,), model=CONTROL_MODEL, train=CONTROL_TRAIN),
        dataset,
        features,
    )
    truth = dataset.songs.set_index("song_id")
    rows = result.predictions
    return [
        metrics.pearson_r(truth.loc[rows["song_id"], TRUE_SD[d]], rows[f"{d}_sigma"])
        for d in DIMENSIONS
    ]


@pytest.mark.parametrize("training", ["mse", "kld", "kld_exact", "rater_nll"])
def test_positive_control_sd_trained_methods_recover_sd(strong, training: str) -> None:
    r = _sigma_recovery(*strong, training)
    assert min(r) > 0.6, f"{training}: r(sigma_hat, true SD) = {r}"


@pytest.mark.parametrize("training", ["nll", "nll_exact", "beta_nll"])
def test_positive_control_mean_trained_methods_see_spread(strong, training: str) -> None:
    """Trained on the song mean only, these see the SD through the noise of a 10-rater mean
    (SD / sqrt(10)): a weaker but clearly positive signal in a short training."""
    r = _sigma_recovery(*strong, training)
    assert np.mean(r) > 0.2 and min(r) > 0.1, f"{training}: r(sigma_hat, true SD) = {r}"


def test_negative_control_no_signal_no_recovery() -> None:
    dataset, features = make_synthetic(n_songs=800, n_features=16, sd_strength=0.0, seed=1)
    result = run_trial(
        TrialSpec("kld", seeds=(0,), model=CONTROL_MODEL, train=CONTROL_TRAIN),
        dataset,
        features,
    )
    rows = result.predictions
    songs = dataset.songs.set_index("song_id")
    r = [
        metrics.pearson_r(songs.loc[rows["song_id"], TARGET_SD[d]], rows[f"{d}_sigma"])
        for d in DIMENSIONS
    ]
    assert max(abs(v) for v in r) < 0.25, r
