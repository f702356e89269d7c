"""run_trial on the bundled real DEAM data (tiny training), its contract, and the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from mer_uq.data import FeatureTable, load_deam, load_features
from mer_uq.methods import UnknownMethodError
from mer_uq.model import FCNConfig
from mer_uq.schema import HP_PREFIX, PREDICTION_COLUMNS
from mer_uq.training import TrainConfig
from mer_uq.trial import TrialSpec, run_trial
from mer_uq.trial_cli import main as train_main

TINY = TrainConfig(epochs=2, steps_per_epoch=8)


@pytest.fixture(scope="module")
def deam():
    return load_deam(), load_features()


def test_mean_training_reports_seeds_and_mc_dropout(deam) -> None:
    dataset, features = deam
    epochs: list[dict] = []
    spec = TrialSpec("mean", seeds=(0, 1), train=TINY, mc_passes=5)
    result = run_trial(spec, dataset, features, on_epoch=epochs.append)
    pred = result.predictions
    assert tuple(pred.columns[: len(PREDICTION_COLUMNS)]) == PREDICTION_COLUMNS
    n_eval = len(dataset.song_ids("valid")) + len(dataset.song_ids("test"))
    assert len(pred) == n_eval * 3 * 2  # songs x methods x seeds
    assert set(pred["method"]) == {"seeds", "mc_dropout", "laplace"}
    assert set(pred["split"]) == {"valid", "test"}
    assert pred.loc[pred["method"] == "seeds", "valence_sigma"].isna().all()
    assert (pred.loc[pred["method"] == "mc_dropout", "valence_sigma"] > 0).all()
    assert pred.duplicated(["song_id", "split", "method", "seed"]).sum() == 0
    hp = {c: pred[c].iloc[0] for c in pred.columns if c.startswith(HP_PREFIX)}
    assert hp["hp_hidden_width"] == 128 and hp["hp_dropout"] == 0.5 and hp["hp_lr"] == 1e-3
    assert hp["hp_mc_passes"] == 5 and "hp_device" not in hp
    assert epochs == result.history and len(epochs) == 2
    m = result.metrics
    assert m["val_loss"] == pytest.approx(np.mean([m["val_loss_seed0"], m["val_loss_seed1"]]))
    assert "test/seeds/valence/mean_r2" in m and "test/seeds/arousal/mean_pearson" in m
    assert "test/seeds/valence/sd_pearson" not in m  # a single mean-only model has no SD
    assert "test/seeds_ensemble/valence/sd_pearson" in m
    assert "test/mc_dropout/arousal/rating_crps" in m
    assert "test/laplace/arousal/sd_pearson" in m and m["time/laplace_s"] > 0


@pytest.mark.parametrize(
    "training", ["nll", "mse", "kld", "nll_exact", "kld_exact", "beta_nll", "rater_nll"]
)
def test_every_two_output_training_runs_on_real_deam(deam, training: str) -> None:
    dataset, features = deam
    spec = TrialSpec(
        training,
        seeds=(3,),
        model=FCNConfig(hidden_width=32),
        train=TrainConfig(epochs=1, steps_per_epoch=8),
    )
    result = run_trial(spec, dataset, features)
    pred = result.predictions
    assert set(pred["method"]) == {training} and set(pred["seed"]) == {3}
    sigma = pred[["valence_sigma", "arousal_sigma"]].to_numpy()
    assert np.isfinite(sigma).all() and ((sigma > 0) & (sigma < 1)).all()
    assert np.isfinite(result.metrics["val_loss"])
    assert -1 <= result.metrics[f"test/{training}/valence/sd_pearson"] <= 1


def test_trial_is_deterministic(deam) -> None:
    dataset, features = deam
    spec = TrialSpec("kld", seeds=(1,), train=TINY)
    a = run_trial(spec, dataset, features).predictions
    b = run_trial(spec, dataset, features).predictions
    assert a.equals(b)


def test_features_missing_split_songs_name_them(deam) -> None:
    dataset, features = deam
    test_ids = dataset.song_ids("test")
    keep = ~np.isin(features.song_ids, test_ids[:3])
    partial = FeatureTable(features.song_ids[keep], features.matrix[keep], features.column)
    with pytest.raises(ValueError, match=rf"lack 3 test song\(s\): {test_ids[0]}"):
        run_trial(TrialSpec("nll", train=TINY), dataset, partial)


def test_non_finite_targets_name_the_song(deam) -> None:
    dataset, features = deam
    songs = dataset.songs.copy()
    song = int(dataset.song_ids("train")[5])
    songs.loc[songs["song_id"] == song, "arousal_sd"] = np.nan
    broken = dataclasses.replace(dataset, songs=songs)
    with pytest.raises(ValueError, match=rf"non-finite targets for song\(s\) \[{song}\]"):
        run_trial(TrialSpec("kld", train=TINY), broken, features)


def test_spec_errors() -> None:
    with pytest.raises(UnknownMethodError, match="unknown training key 'seeds'"):
        TrialSpec("seeds")
    with pytest.raises(UnknownMethodError, match="method 'nll' reads training 'nll', not 'mean'"):
        TrialSpec("mean", methods=("nll",))
    with pytest.raises(ValueError, match="distinct"):
        TrialSpec("nll", seeds=(1, 1))
    assert TrialSpec("mean", methods=("seeds",)).reported_methods == ("seeds",)
    spec = TrialSpec("nll", train=dataclasses.replace(TINY, device="cpu", cpu_threads=2))
    assert "hp_cpu_threads" not in spec.hyperparameters()


def test_cli_json_and_errors(capsys) -> None:
    code = train_main(
        ["--method", "nll", "--seed", "0", "--epochs", "1", "--steps-per-epoch", "4", "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "nll" and report["epochs"] == 1
    assert "test/nll/valence/mean_r2" in report["test"]
    code = train_main(
        ["--method", "mc_dropout", "--epochs", "1", "--steps-per-epoch", "4", "--mc-passes", "4"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "mean_r2" in out and "valence" in out
    assert train_main(["--method", "nl"]) == 2
    assert "unknown method 'nl'" in capsys.readouterr().err


def _flushing() -> bool:
    """True when torch flushes denormals: a denormal float32 then reads back as zero."""
    import torch

    return bool((torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0)


def test_prediction_runs_flushed_and_settings_restored_once(deam, monkeypatch) -> None:
    """run_trial enters cpu_threads and so does train_stack inside it: MC dropout after
    training must still run with denormals flushed and the trial's thread count, and
    both settings come back as they were when run_trial returns."""
    import torch

    import mer_uq.trial as trial_module

    seen: list[tuple[bool, int]] = []
    original = trial_module.mc_dropout

    def recording_mc_dropout(*args, **kwargs):
        seen.append((_flushing(), torch.get_num_threads()))
        return original(*args, **kwargs)

    monkeypatch.setattr(trial_module, "mc_dropout", recording_mc_dropout)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert not _flushing()
        dataset, features = deam
        cfg = dataclasses.replace(TINY, cpu_threads=1)
        run_trial(TrialSpec("mean", seeds=(0,), train=cfg, mc_passes=3), dataset, features)
        assert seen == [(True, 1)]
        assert not _flushing() and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads_before)
