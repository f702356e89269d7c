"""Predictions: MC dropout per member, the seeds ensemble and the Gaussian mixture."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mer_uq.model import FCNConfig, StackedFCN
from mer_uq.prediction import (
    ALEATORIC_SD,
    ENSEMBLE_SEED,
    EPISTEMIC_SD,
    combine_seeds,
    mc_dropout,
    mixture,
    predict,
    prediction_frame,
)
from mer_uq.schema import PREDICTION_COLUMNS


def _frame(method: str, n_seeds: int = 4, n_songs: int = 6, sigma: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    mu = rng.uniform(-0.5, 0.5, (n_seeds, n_songs, 2))
    sd = rng.uniform(0.1, 0.3, (n_seeds, n_songs, 2)) if sigma else None
    ids = np.arange(10, 10 + n_songs)
    splits = np.where(ids % 2 == 0, "valid", "test")
    frame = prediction_frame(ids, splits, method, tuple(range(n_seeds)), mu, sd)
    frame["hp_dropout"] = 0.5
    return frame


def test_prediction_frame_layout() -> None:
    frame = _frame("nll", n_seeds=3, n_songs=5)
    assert tuple(frame.columns[: len(PREDICTION_COLUMNS)]) == PREDICTION_COLUMNS
    assert len(frame) == 15 and sorted(frame["seed"].unique()) == [0, 1, 2]
    assert _frame("seeds", sigma=False)["valence_sigma"].isna().all()


def test_combine_seeds_is_mean_and_sd_of_means() -> None:
    frame = _frame("seeds", sigma=False)
    out = combine_seeds(frame)  # default: the paper's eq. 5, SD with n - 1
    population = combine_seeds(frame, ddof=0)
    assert (out["seed"] == ENSEMBLE_SEED).all() and (out["n_members"] == 4).all()
    assert len(out) == 6 and (out["hp_dropout"] == 0.5).all()
    for song, rows in frame.groupby("song_id"):
        row = out[out["song_id"] == song].iloc[0]
        row0 = population[population["song_id"] == song].iloc[0]
        for dim in ("valence", "arousal"):
            values = rows[f"{dim}_mu"].to_numpy()
            assert row[f"{dim}_mu"] == pytest.approx(values.mean())
            assert row[f"{dim}_sigma"] == pytest.approx(values.std(ddof=1))
            assert row0[f"{dim}_sigma"] == pytest.approx(values.std(ddof=0))
    with pytest.raises(ValueError, match="ddof"):
        combine_seeds(frame, ddof=2)


def test_mixture_adds_epistemic_variance_never_averages_sigma() -> None:
    frame = _frame("nll_exact")
    out = mixture(frame)
    for song, rows in frame.groupby("song_id"):
        row = out[out["song_id"] == song].iloc[0]
        for dim in ("valence", "arousal"):
            mu, sd = rows[f"{dim}_mu"].to_numpy(), rows[f"{dim}_sigma"].to_numpy()
            assert row[ALEATORIC_SD[dim]] ** 2 == pytest.approx(np.mean(sd**2))
            assert row[EPISTEMIC_SD[dim]] ** 2 == pytest.approx(np.var(mu))
            assert row[f"{dim}_sigma"] ** 2 == pytest.approx(np.mean(sd**2) + np.var(mu))
            assert row[f"{dim}_sigma"] > np.mean(sd)  # averaging sigma would understate


def test_mixture_matches_sampling_the_mixture() -> None:
    rng = np.random.default_rng(1)
    mu = np.array([-0.3, 0.1, 0.4])
    sigma = np.array([0.1, 0.2, 0.15])
    members = prediction_frame(np.array([7]), np.array(["test"]), "nll", (0, 1, 2),
                               np.repeat(mu[:, None, None], 2, axis=2),
                               np.repeat(sigma[:, None, None], 2, axis=2))
    out = mixture(members).iloc[0]
    member = rng.integers(0, 3, 400_000)
    draws = rng.normal(mu[member], sigma[member])
    assert out["valence_mu"] == pytest.approx(draws.mean(), abs=0.002)
    assert out["valence_sigma"] == pytest.approx(draws.std(), rel=0.005)
    # the seeds ensemble with the population SD is the mixture of zero-width members
    means_only = members.assign(valence_sigma=0.0, arousal_sigma=0.0)
    seeds = combine_seeds(members, method="nll", ddof=0).iloc[0]
    assert seeds["valence_mu"] == pytest.approx(mu.mean())
    assert seeds["valence_sigma"] == pytest.approx(mixture(means_only).iloc[0]["valence_sigma"])


def test_combiner_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="method 'seeds' has NaN sigma"):
        mixture(_frame("seeds", sigma=False))
    with pytest.raises(ValueError, match="no prediction rows for method 'seeds'"):
        combine_seeds(_frame("nll"))
    with pytest.raises(ValueError, match=">= 2 seeds"):
        combine_seeds(_frame("seeds", n_seeds=1, sigma=False))
    ragged = _frame("seeds", sigma=False).iloc[1:]
    with pytest.raises(ValueError, match="different numbers of seeds"):
        combine_seeds(ragged)


def test_mc_dropout_per_member_streams_and_spread() -> None:
    stacked = StackedFCN(5, FCNConfig(hidden_width=32), False, seeds=(0, 1))
    alone = StackedFCN(5, FCNConfig(hidden_width=32), False, seeds=(1,))
    x = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    mean, sd = mc_dropout(stacked, x, passes=50)
    mean_alone, sd_alone = mc_dropout(alone, x, passes=50)
    np.testing.assert_allclose(mean[1], mean_alone[0], rtol=1e-6)
    np.testing.assert_allclose(sd[1], sd_alone[0], rtol=1e-5)
    assert (sd > 0).all()
    again = StackedFCN(5, FCNConfig(hidden_width=32), False, seeds=(0, 1))
    np.testing.assert_array_equal(mc_dropout(again, x, passes=50)[0], mean)
    deterministic, none = predict(stacked, x)
    assert none is None
    assert np.abs(mean - deterministic).max() < 0.2  # the MC mean sits near the plain pass


def test_mc_dropout_matches_an_explicit_loop_of_passes() -> None:
    model = StackedFCN(4, FCNConfig(hidden_width=8), False, seeds=(3,))
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    mean, sd = mc_dropout(model, x, passes=5)
    rng = StackedFCN(4, FCNConfig(hidden_width=8), False, seeds=(3,)).streams[0].mc_dropout
    code = model.dropout
    masks = code.masks(code.random_bytes(rng, (5, 2, 3, 8)))
    passes = []
    for p in range(5):
        m = [torch.from_numpy(masks[p, i]) for i in range(2)]
        passes.append(model.forward(torch.from_numpy(x), m).mu[0].detach().numpy())
    np.testing.assert_allclose(mean[0], np.mean(passes, axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sd[0], np.std(passes, axis=0, ddof=1), rtol=1e-4, atol=1e-6)
    fresh = StackedFCN(4, FCNConfig(hidden_width=8), False, seeds=(3,))  # same masks again
    _, sd_population = mc_dropout(fresh, x, passes=5, ddof=0)
    np.testing.assert_allclose(sd_population[0], np.std(passes, axis=0), rtol=1e-4, atol=1e-6)


def test_mc_dropout_bad_input() -> None:
    model = StackedFCN(4, FCNConfig(dropout=0.0), False, seeds=(0,))
    with pytest.raises(ValueError, match="dropout > 0"):
        mc_dropout(model, np.zeros((2, 4), np.float32), passes=10)
    with pytest.raises(ValueError, match="at least 2 passes"):
        mc_dropout(model, np.zeros((2, 4), np.float32), passes=1)
    with pytest.raises(ValueError, match="feature dimension 3"):
        predict(model, np.zeros((2, 3), np.float32))
