"""SWAG (mer_uq.swag): moments against a hand computation on a fixed trajectory, the
collection on a tiny stacked model, the sample covariance, and seeds alone vs stacked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mer_uq.swag as swag
from mer_uq.model import FCNConfig, StackedFCN
from mer_uq.synthetic import make_synthetic
from mer_uq.training import TrainConfig, TrainingData
from mer_uq.trial import TrialSpec, run_trial

TRAJECTORY = np.array([[1.0, -2.0, 0.5],
                       [2.0, -1.0, 0.5],
                       [0.0, -4.0, 1.5],
                       [3.0, -3.0, 0.5]])


def test_moments_by_hand():
    m = swag.swag_moments(TRAJECTORY, rank=3)
    np.testing.assert_allclose(m.mean, [1.5, -2.5, 0.75])
    np.testing.assert_allclose(m.sq_mean, [(1 + 4 + 0 + 9) / 4, (4 + 1 + 16 + 9) / 4,
                                           (0.25 * 3 + 2.25) / 4])
    np.testing.assert_allclose(m.diag_var, [3.5 - 2.25, 7.5 - 6.25, 0.75 - 0.5625])
    # running means after snapshots 2, 3, 4: [1.5, -1.5, 0.5], [1, -7/3, 5/6], [1.5, -2.5, .75]
    expected = np.array([[2.0 - 1.5, -1.0 + 1.5, 0.0],
                         [0.0 - 1.0, -4.0 + 7 / 3, 1.5 - 5 / 6],
                         [3.0 - 1.5, -3.0 + 2.5, 0.5 - 0.75]])
    np.testing.assert_allclose(m.deviations, expected)
    assert m.rank == 3 and m.n_snapshots == 4
    with pytest.raises(ValueError, match="at least 2 snapshots"):
        swag.swag_moments(TRAJECTORY[:1])


def _tiny_model(seeds=(0, 1)) -> StackedFCN:
    return StackedFCN(3, FCNConfig(hidden_width=2, depth=1, dropout=0.0), False, seeds)


def _data(rng) -> TrainingData:
    return TrainingData(rng.standard_normal((20, 3)), rng.uniform(-0.5, 0.5, (20, 4)),
                        rng.standard_normal((8, 3)), rng.uniform(-0.5, 0.5, (8, 4)))


def test_collection_on_a_tiny_model_with_a_fixed_trajectory(monkeypatch):
    """The epochs are replaced by a fixed walk of the weights: SWAG must take one snapshot
    of the whole stack per epoch, give the hand-computed moments, and restore the model."""
    model = _tiny_model()
    start = model.params.data.clone()
    n = start.numel()
    walk = np.random.default_rng(2).standard_normal((5, n)).astype(np.float32)
    steps = iter(walk)

    def fixed_epoch(m, *args):
        with torch.no_grad():
            m.params.data.copy_(torch.from_numpy(next(steps)))
        return np.zeros(m.n_members)

    monkeypatch.setattr(swag, "train_epoch", fixed_epoch)
    moments = swag.collect_swag(model, "mean", _data(np.random.default_rng(0)), TrainConfig(),
                                epochs=5, rank=4)
    torch.testing.assert_close(model.params.data, start, rtol=0, atol=0)
    w = walk.astype(np.float64)
    np.testing.assert_allclose(moments.mean, w.mean(0), rtol=1e-12)
    np.testing.assert_allclose(moments.diag_var, np.maximum((w**2).mean(0) - w.mean(0)**2, 0),
                               atol=1e-12)
    running = np.array([w[: i + 1].mean(0) for i in range(5)])
    np.testing.assert_allclose(moments.deviations, (w - running)[1:], atol=1e-12)


def test_samples_have_swag_covariance_and_members_stay_apart():
    model = _tiny_model()
    rng = np.random.default_rng(3)
    moments = swag.swag_moments(rng.standard_normal((6, model.params.data.numel())), rank=4)
    rngs = [np.random.default_rng(10), np.random.default_rng(11)]
    draws = np.array([swag.sample_weights(model, moments, rngs) for _ in range(40_000)])
    d = moments.deviations
    cov = np.diag(moments.diag_var) / 2 + d.T @ d / (2 * (moments.rank - 1))
    member_of = model.params.member_of.numpy()
    for k in range(2):
        mine = member_of == k
        block = cov[np.ix_(mine, mine)]
        np.testing.assert_allclose(draws[:, mine].mean(0), moments.mean[mine],
                                   atol=4 * np.sqrt(block.diagonal().max() / 40_000))
        np.testing.assert_allclose(np.cov(draws[:, mine].T), block, atol=0.06)
    # member 0's draws do not depend on member 1's stream
    alone = [np.random.default_rng(10), np.random.default_rng(99)]
    a = swag.sample_weights(model, moments, alone)
    b = swag.sample_weights(model, moments, [np.random.default_rng(10),
                                             np.random.default_rng(11)])
    mine = member_of == 0
    np.testing.assert_array_equal(a[mine], b[mine])


def test_swag_trial_seed_alone_or_stacked():
    dataset, features = make_synthetic(n_songs=200, n_features=12, seed=1)
    train = TrainConfig(epochs=3, steps_per_epoch=8, batch_size=16)
    model = FCNConfig(hidden_width=16)
    stacked = run_trial(TrialSpec("swag", (0, 1), model, train), dataset, features)
    alone = run_trial(TrialSpec("swag", (1,), model, train), dataset, features)
    a = stacked.predictions[stacked.predictions["seed"] == 1].reset_index(drop=True)
    b = alone.predictions
    assert set(a["method"]) == {"swag"} and (a["valence_sigma"] > 0).all()
    np.testing.assert_allclose(a["valence_mu"], b["valence_mu"], atol=1e-4)
    np.testing.assert_allclose(a["arousal_sigma"], b["arousal_sigma"], rtol=1e-2, atol=1e-5)
    assert stacked.metrics["time/swag_s"] > 0
    # the converged model is the mean key's: same validation loss
    mean = run_trial(TrialSpec("mean", (0, 1), model, train, methods=("seeds",)), dataset,
                     features)
    assert stacked.metrics["val_loss"] == mean.metrics["val_loss"]
