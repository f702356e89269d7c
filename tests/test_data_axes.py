"""The data axes without Ray: the seeded k-rater and training-song draws, the trial on a
cell, the Spearman-Brown prophecy, the analysis curves, and the sweep's plan and flags."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from mer_uq import metrics
from mer_uq.data import load_deam
from mer_uq.data.prophecy import raters_needed, raters_needed_table, single_rater_reliability
from mer_uq.data.reliability import spearman_brown
from mer_uq.data.subsample import (
    DataAxes,
    apply_axes,
    rater_ranks,
    stratified_counts,
    subsample_raters,
    train_subset,
)
from mer_uq.schema import DATA_AXIS_COLUMNS, DIMENSIONS
from mer_uq.synthetic import make_synthetic
from mer_uq.training import TrainConfig
from mer_uq.trial import TrialSpec, run_trial, training_targets


def uneven_ratings(seed: int = 0) -> pd.DataFrame:
    """40 songs with 3..8 ratings each (repeated rater ids allowed, as in DEAM)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(3, 9, size=40)
    song = np.repeat(np.arange(1, 41), counts)
    return pd.DataFrame({"song_id": song, "rater": [f"r{i % 7}" for i in range(song.size)],
                         "valence": rng.normal(size=song.size),
                         "arousal": rng.normal(size=song.size)})


def test_rater_ranks_shuffle_each_song_and_nest() -> None:
    ratings = uneven_ratings()
    ranks = rater_ranks(ratings, seed=3)
    for _, group in pd.Series(ranks).groupby(ratings["song_id"].to_numpy()):
        assert sorted(group) == list(range(len(group)))  # a permutation per song
    np.testing.assert_array_equal(ranks, rater_ranks(ratings, seed=3))
    assert not np.array_equal(ranks, rater_ranks(ratings, seed=4))
    two, five = subsample_raters(ratings, 2, 3), subsample_raters(ratings, 5, 3)
    counts = ratings.groupby("song_id").size()
    assert (two.groupby("song_id").size() == 2).all()
    np.testing.assert_array_equal(five.groupby("song_id").size(), np.minimum(counts, 5))
    # nested: the 2 drawn are among the 5 drawn; rows keep the table's order
    assert two.merge(five, how="left", indicator=True)["_merge"].eq("both").all()
    assert two.index.is_monotonic_increasing


def test_rater_draw_is_uniform_over_ratings() -> None:
    """Each of a song's n ratings is drawn into the k with probability k/n."""
    ratings = pd.DataFrame({"song_id": np.repeat([1], 6), "rater": list("abcdef"),
                            "valence": np.arange(6.0), "arousal": np.zeros(6)})
    hits = np.zeros(6)
    trials = 600
    for seed in range(trials):
        hits[rater_ranks(ratings, seed) < 2] += 1
    for count in hits:
        assert binomtest(int(count), trials, 2 / 6).pvalue > 1e-3


def test_stratified_training_subset() -> None:
    songs = load_deam().songs
    sizes = np.array([7, 13, 200, 1])
    counts = stratified_counts(sizes, 0.25)
    assert counts.sum() == round(0.25 * sizes.sum())
    assert np.all(np.abs(counts - 0.25 * sizes) < 1)
    quarter, half = train_subset(songs, 0.25, 0), train_subset(songs, 0.5, 0)
    train = songs[songs["split"] == "train"]
    assert quarter.size == round(0.25 * len(train)) and set(quarter) <= set(half)
    assert set(half) <= set(train["song_id"])
    kept = train[train["song_id"].isin(quarter)].groupby("genre").size()
    share = 0.25 * train.groupby("genre").size()
    assert (abs(kept.reindex(share.index, fill_value=0) - share) < 1).all()
    np.testing.assert_array_equal(train_subset(songs, 1.0, 0), np.sort(train["song_id"]))
    assert not np.array_equal(quarter, train_subset(songs, 0.25, 1))


def test_apply_axes_trains_on_k_and_scores_test_on_all_and_k() -> None:
    deam = load_deam()
    cell = apply_axes(deam, DataAxes(raters=3, train_fraction=0.5, seed=1))
    trained, scored = cell.trained_on, cell.k_scored
    assert trained.song_ids("train").size == round(0.5 * deam.song_ids("train").size)
    np.testing.assert_array_equal(trained.song_ids("test"), deam.song_ids("test"))
    np.testing.assert_array_equal(trained.song_ids("valid"), deam.song_ids("valid"))
    by_split = trained.songs.groupby("split")["n_raters"]
    assert by_split.max()["train"] == by_split.max()["valid"] == 3
    test_full = deam.songs.set_index("song_id").loc[deam.song_ids("test")]
    test_trained = trained.songs.set_index("song_id").loc[deam.song_ids("test")]
    pd.testing.assert_frame_equal(test_trained, test_full)  # test songs: ALL raters
    assert (scored.songs["n_raters"] == 3).all()  # second scoring: the same k everywhere
    # targets are the mean / population SD of exactly the drawn ratings
    drawn = scored.ratings.groupby("song_id")
    for dim in DIMENSIONS:
        songs = scored.songs.set_index("song_id")
        np.testing.assert_allclose(songs[f"{dim}_mean"], drawn[dim].mean().loc[songs.index],
                                   atol=1e-12)
        np.testing.assert_allclose(songs[f"{dim}_sd"],
                                   drawn[dim].std(ddof=0).loc[songs.index], atol=1e-12)
    # every training (rater_nll too) fits the statistics of exactly the k drawn ratings
    ids = trained.song_ids("train")
    drawn_train = trained.ratings.groupby("song_id")[list(DIMENSIONS)]
    expected = np.hstack([drawn_train.mean().loc[ids].to_numpy(),
                          drawn_train.std(ddof=0).loc[ids].to_numpy()])
    np.testing.assert_allclose(training_targets(trained, ids), expected, atol=1e-12)
    assert cell.facts["data/songs_short_of_k/test"] == 0


def test_songs_with_fewer_than_k_keep_all_and_are_counted() -> None:
    ratings = uneven_ratings()
    songs = pd.DataFrame({"song_id": np.arange(1, 41), "genre": "g",
                          "split": np.repeat(["train", "valid", "test", "train"], 10)})
    from mer_uq.data.subsample import with_ratings

    base = load_deam()
    base = type(base)(songs=songs.assign(year=0, n_raters=0, valence_mean=0.0,
                                         valence_sd=0.0, arousal_mean=0.0, arousal_sd=0.0),
                      ratings=ratings, swap=base.swap, averaged_check=base.averaged_check,
                      split_source="test", deam_dir=base.deam_dir)
    base = with_ratings(base, ratings)
    cell = apply_axes(base, DataAxes(raters=6))
    counts = ratings.groupby("song_id").size()
    split = songs.set_index("song_id")["split"]
    for name in ("train", "valid", "test"):
        assert cell.facts[f"data/songs_short_of_k/{name}"] == int(
            (counts[split == name] < 6).sum())
    got = cell.k_scored.songs.set_index("song_id")["n_raters"]
    np.testing.assert_array_equal(got.loc[counts.index], np.minimum(counts, 6))


def test_data_axes_validation() -> None:
    for bad in ({"raters": 1}, {"train_fraction": 0.0}, {"train_fraction": 1.5}, {"seed": -1}):
        with pytest.raises(ValueError):
            DataAxes(**bad)
    axes = DataAxes(5, 0.5, 2)
    assert DataAxes.from_dict(axes.to_dict()) == axes
    assert math.isnan(DataAxes().columns()["n_raters_k"])


def test_trial_on_a_cell_is_deterministic_and_labelled() -> None:
    dataset, features = make_synthetic(n_songs=200, n_features=8, n_raters=6, seed=1)
    tiny = TrainConfig(epochs=2, steps_per_epoch=4)
    spec = TrialSpec("rater_nll", seeds=(0, 1), train=tiny, data=DataAxes(3, 0.5, 0))
    first, again = run_trial(spec, dataset, features), run_trial(spec, dataset, features)
    pd.testing.assert_frame_equal(first.predictions, again.predictions)
    pred = first.predictions
    assert (pred["n_raters_k"] == 3).all() and (pred["train_fraction"] == 0.5).all()
    assert (pred["subsample_seed"] == 0).all()
    assert "test_k/rater_nll/valence/sd_pearson" in first.metrics
    assert first.metrics["data/train_songs"] == round(0.5 * dataset.song_ids("train").size)
    assert first.metrics["test/rater_nll/valence/sd_pearson"] != first.metrics[
        "test_k/rater_nll/valence/sd_pearson"]
    plain = run_trial(TrialSpec("rater_nll", seeds=(0,), train=tiny), dataset, features)
    assert not set(DATA_AXIS_COLUMNS) & set(plain.predictions.columns)
    assert not any(k.startswith(("test_k/", "data/")) for k in plain.metrics)


def test_spearman_brown_prophecy() -> None:
    for rho_1 in (0.05, 0.27, 0.6):
        for target in (0.5, 0.8):
            m = raters_needed(rho_1, target)
            assert spearman_brown(rho_1, m) == pytest.approx(target)
        rho_10 = spearman_brown(rho_1, 10)
        assert single_rater_reliability(rho_10, 10) == pytest.approx(rho_1)
    assert raters_needed(0.0, 0.5) == math.inf and raters_needed(-0.01, 0.8) == math.inf
    assert math.isnan(raters_needed(math.nan, 0.5))


def test_raters_needed_on_a_known_reliability() -> None:
    """Ratings = song truth + rater noise: single-rater reliability s_t^2/(s_t^2+s_e^2)."""
    rng = np.random.default_rng(5)
    n_songs, k = 800, 8
    truth = rng.normal(size=n_songs)
    values = truth[:, None] + 1.5 * rng.normal(size=(n_songs, k))  # rho_1 = 1 / 3.25
    ratings = pd.DataFrame({"song_id": np.repeat(np.arange(n_songs), k), "rater": "r",
                            "valence": values.ravel(), "arousal": rng.normal(size=n_songs * k)})
    table = {(r.dimension, r.statistic, r.target): r
             for r in raters_needed_table(ratings, n_repeats=40, n_boot=200)}
    mean_half = table[("valence", "mean", 0.5)]
    assert mean_half.k == k
    assert mean_half.single_rater == pytest.approx(1 / 3.25, abs=0.03)
    # m(0.5) = (1 - rho_1) / rho_1 = s_e^2 / s_t^2 = 2.25 raters
    assert mean_half.raters_ci[0] <= 2.25 <= mean_half.raters_ci[1]
    noise = table[("arousal", "mean", 0.8)]  # no song signal: unbounded upper end
    assert noise.single_rater_ci[0] <= 0 and noise.raters_ci[1] == math.inf


def test_resampled_pearson_equals_metrics_pearson() -> None:
    from analysis.compute.data_axes import _mean_r

    rng = np.random.default_rng(0)
    target, members = rng.normal(size=50), rng.normal(size=(3, 50))
    indices = rng.integers(0, 50, size=(20, 50))
    value, _, boot = _mean_r(target, members, indices)
    assert value == pytest.approx(np.mean([metrics.pearson_r(target, m) for m in members]))
    for b in range(20):
        idx = indices[b]
        expected = np.mean([metrics.pearson_r(target[idx], m[idx]) for m in members])
        assert boot[b] == pytest.approx(expected)


def test_plan_and_flags() -> None:
    from sweep.cli import parse_options
    from sweep.study import (
        PlanError,
        plan_trials,
        resolve_fractions,
        resolve_raters,
        with_data_axes,
    )

    plans = plan_trials(("mse", "kld"), (0, 1, 2), None)
    assert with_data_axes(plans, None, None) == plans  # no axes: today's ids and files
    assert [p.file_stem for p in plans] == ["mse__seeds0-2", "kld__seeds0-2"]
    grid = with_data_axes(plans, resolve_raters("2,5,all"), resolve_fractions("0.5,1"), 3)
    stems = [p.file_stem for p in grid]
    assert len(stems) == len(set(stems)) == 2 * 3 * 2
    assert "mse__seeds0-2_k5_frac0.5_sub3" in stems and "kld__seeds0-2_kall_frac1_sub3" in stems
    config = next(p for p in grid if p.file_stem == "mse__seeds0-2_k2_frac1_sub3").to_config()
    assert config["data"] == {"raters": 2, "train_fraction": 1.0, "subsample_seed": 3}
    assert DataAxes.from_dict(config["data"]) == DataAxes(2, 1.0, 3)
    for bad in ("1", "2,2", "x", ""):
        with pytest.raises(PlanError):
            resolve_raters(bad)
    for bad in ("0", "1.5", "0.5,0.5", "a"):
        with pytest.raises(PlanError):
            resolve_fractions(bad)
    options = parse_options(["--raters", "2,5", "--train-fraction", "0.5,1",
                             "--subsample-seed", "4"])
    assert (options.raters, options.train_fraction, options.subsample_seed) == (
        "2,5", "0.5,1", 4)


def test_data_flags_to_record() -> None:
    from sweep.cli import parse_options
    from sweep.study import PlanError, data_axes_record, data_source_record

    synthetic = data_source_record(parse_options(["--synthetic", "--synthetic-raters", "20"]))
    assert synthetic["synthetic"] == {"n_songs": 1744, "n_features": 130, "n_raters": 20,
                                      "sd_strength": 1.0, "seed": 0}
    from mer_uq.sources import load_dataset

    assert (load_dataset(synthetic).songs["n_raters"] == 20).all()
    assert data_axes_record(parse_options(["--raters", "2,all"]))["raters"] == (2, None)
    with pytest.raises(PlanError, match="axes of the seed sweep"):
        data_axes_record(parse_options(["--search", "optuna", "--train-fraction", "0.5"]))
