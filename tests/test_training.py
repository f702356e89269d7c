"""Training: the optimiser state pieces against torch, and the stack's per-member equivalence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mer_uq import methods
from mer_uq.model import FCNConfig
from mer_uq.prediction import predict
from mer_uq.training import (
    EarlyStopping,
    PlateauSchedule,
    StackedAdam,
    TrainConfig,
    TrainingData,
    TrainingDivergedError,
    cpu_threads,
    epoch_batches,
    train_stack,
)

SMALL_MODEL = FCNConfig(hidden_width=16)
SHORT = TrainConfig(epochs=4, steps_per_epoch=8, batch_size=16)


@pytest.fixture(scope="module")
def data() -> TrainingData:
    rng = np.random.default_rng(0)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, 10)).astype(np.float32)
        mean = np.tanh(x[:, :2] * 0.5)
        sd = 0.1 + 0.1 * np.abs(x[:, 2:4])
        return x, np.concatenate([mean, sd], axis=1)

    x_train, t_train = split(200)
    x_valid, t_valid = split(60)
    return TrainingData(x_train, t_train, x_valid, t_valid)


# ---------------------------------------------------------------- optimiser pieces


def _random_params(k: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(k, 6, 5, generator=g), torch.randn(k, 1, 5, generator=g)]


@pytest.mark.parametrize("fused", [True, False])
def test_stacked_adam_equals_torch_adam_for_one_member(fused: bool) -> None:
    ours = _random_params(1)
    ref = [torch.nn.Parameter(p[0].clone()) for p in ours]
    adam = StackedAdam(ours, fused=fused)
    adam.set_member_lr(np.array([1e-2]))
    torch_adam = torch.optim.Adam(ref, lr=1e-2)
    g = torch.Generator().manual_seed(2)
    for _ in range(6):
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        adam.step(grads)
        for p, grad in zip(ref, grads, strict=True):
            p.grad = grad[0].clone()
        torch_adam.step()
    for mine, theirs in zip(ours, ref, strict=True):
        torch.testing.assert_close(mine[0], theirs.detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fused", [True, False])
def test_stacked_adam_per_member_learning_rates_and_frozen_member(fused: bool) -> None:
    lrs = np.array([1e-3, 5e-3, 0.0])
    ours = _random_params(3)
    start = [p.clone() for p in ours]
    refs = [[torch.nn.Parameter(p[k].clone()) for p in ours] for k in range(2)]
    opts = [torch.optim.Adam(refs[k], lr=float(lrs[k])) for k in range(2)]
    adam = StackedAdam(ours, fused=fused)
    adam.set_member_lr(lrs)
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        adam.step(grads)
        for k in range(2):
            for p, grad in zip(refs[k], grads, strict=True):
                p.grad = grad[k].clone()
            opts[k].step()
    for k in range(2):
        for mine, theirs in zip(ours, refs[k], strict=True):
            torch.testing.assert_close(mine[k], theirs.detach(), rtol=1e-6, atol=1e-7)
    for mine, before, moment in zip(ours, start, adam.exp_avg, strict=True):
        assert torch.equal(mine[2], before[2])  # lr 0: a stopped member does not move
        assert float(moment[2].abs().sum()) == 0.0  # ... nor do its moments


def test_plateau_schedule_equals_torch_reduce_lr_on_plateau() -> None:
    rng = np.random.default_rng(4)
    losses = np.cumsum(rng.normal(0.0, 1.0, (40, 3)), axis=0) * 0.01 + 1.0
    losses[:, 2] = -np.abs(losses[:, 2])  # negative losses (NLL) follow the same rule
    ours = PlateauSchedule(3, 1e-3, factor=0.9, patience=3, min_lr=1e-5)
    refs = []
    for _ in range(3):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.9, patience=3, min_lr=1e-5)
        refs.append((opt, sched))
    for epoch_losses in losses:
        ours.step(epoch_losses, np.ones(3, dtype=bool))
        for k, (opt, sched) in enumerate(refs):
            sched.step(float(epoch_losses[k]))
            assert ours.lr[k] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
    assert (ours.lr < 1e-3).any()  # the sequence did trigger reductions


def test_early_stopping_counts_per_member() -> None:
    stop = EarlyStopping(2, patience=2)
    assert stop.update(np.array([1.0, 1.0]), 1).tolist() == [True, True]
    assert stop.update(np.array([0.5, 2.0]), 2).tolist() == [True, False]
    assert stop.update(np.array([0.6, 2.0]), 3).tolist() == [False, False]
    assert stop.active.tolist() == [True, False]  # member 1: 2 epochs without improvement
    assert stop.best_epoch.tolist() == [2, 1]


def test_epoch_batches_cover_the_split_evenly() -> None:
    batches = epoch_batches(np.random.default_rng(0), 100, steps=8, batch=25)
    assert batches.shape == (8, 25)
    counts = np.bincount(batches.ravel(), minlength=100)
    assert counts.min() == 2 and counts.max() == 2  # two full permutations


# ---------------------------------------------------------------- the loop


def _valid_predictions(trained, data: TrainingData) -> np.ndarray:
    mu, sigma = predict(trained.model, data.x_valid)
    return np.concatenate([mu, sigma], axis=-1) if sigma is not None else mu


@pytest.mark.parametrize("training", ["nll", "mean"])
def test_stacked_members_equal_separate_runs(data: TrainingData, training: str) -> None:
    """Seed s trains to the same model alone or stacked: init, batches, dropout masks and
    optimiser state are per member, including early stopping at different epochs."""
    cfg = TrainConfig(
        epochs=10, steps_per_epoch=8, batch_size=16, lr=0.02, early_stopping_patience=2, patience=1
    )
    seeds = (0, 1, 2)
    stacked = train_stack(training, seeds, data, SMALL_MODEL, cfg)
    stacked_pred = _valid_predictions(stacked, data)
    for k, seed in enumerate(seeds):
        alone = train_stack(training, (seed,), data, SMALL_MODEL, cfg)
        np.testing.assert_allclose(
            stacked_pred[k], _valid_predictions(alone, data)[0], rtol=1e-4, atol=1e-5
        )
        assert alone.best_epoch[0] == stacked.best_epoch[k]
        assert alone.epochs_trained[0] == stacked.epochs_trained[k]
        assert alone.best_val_loss[0] == pytest.approx(stacked.best_val_loss[k], rel=1e-5)
        for record, stacked_record in zip(alone.history, stacked.history, strict=False):
            assert record[f"val_loss_seed{seed}"] == pytest.approx(
                stacked_record[f"val_loss_seed{seed}"], rel=1e-5, abs=1e-6
            )
    # the scenario exercised early stopping: members stopped, and not all at once
    assert stacked.epochs_trained.min() < cfg.epochs
    assert len(set(stacked.epochs_trained.tolist())) > 1


def test_same_seed_same_predictions_other_seed_differs(data: TrainingData) -> None:
    a = _valid_predictions(train_stack("kld", (7,), data, SMALL_MODEL, SHORT), data)
    b = _valid_predictions(train_stack("kld", (7,), data, SMALL_MODEL, SHORT), data)
    c = _valid_predictions(train_stack("kld", (8,), data, SMALL_MODEL, SHORT), data)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_best_weights_are_restored(data: TrainingData) -> None:
    cfg = TrainConfig(
        epochs=8, steps_per_epoch=8, batch_size=16, lr=0.05, early_stopping_patience=3
    )
    trained = train_stack("nll_exact", (0, 1), data, SMALL_MODEL, cfg)
    spec = methods.training_spec("nll_exact")
    x = torch.as_tensor(data.x_valid)
    with torch.no_grad():
        val = spec.validation_objective(
            trained.model.forward(x), torch.as_tensor(data.t_valid, dtype=torch.float32)
        )
    np.testing.assert_allclose(val.mean(dim=(1, 2)).numpy(), trained.best_val_loss, rtol=1e-5)
    last = np.array([trained.history[-1][f"val_loss_seed{s}"] for s in (0, 1)])
    assert (trained.best_val_loss <= last).all()


def test_history_and_callback(data: TrainingData) -> None:
    seen: list[dict] = []
    trained = train_stack("mse", (0, 1), data, SMALL_MODEL, SHORT, on_epoch=seen.append)
    assert seen == trained.history and [r["epoch"] for r in seen] == [1, 2, 3, 4]
    first = seen[0]
    assert first["lr"] == pytest.approx(1e-3)
    assert first["val_loss"] == pytest.approx(
        (first["val_loss_seed0"] + first["val_loss_seed1"]) / 2
    )
    assert all(isinstance(v, int | float) for v in first.values())


def test_every_training_key_trains_with_finite_losses(data: TrainingData) -> None:
    zero_sd = dataclasses.replace(data, t_train=data.t_train.copy())
    zero_sd.t_train[:50, 2:] = 0.0  # raters in full agreement: KLD divides by sigma^2
    cfg = TrainConfig(epochs=2, steps_per_epoch=4, batch_size=16)
    with_ratings = dataclasses.replace(zero_sd, t_train=_with_ratings(zero_sd.t_train),
                                       t_valid=_with_ratings(zero_sd.t_valid))
    for key, spec in methods.TRAININGS.items():
        chosen = with_ratings if spec.individual_ratings else zero_sd
        trained = train_stack(key, (0,), chosen, SMALL_MODEL, cfg)
        assert np.isfinite(trained.best_val_loss).all(), key


def _with_ratings(targets: np.ndarray, n_raters: int = 5) -> np.ndarray:
    """Targets plus n_raters ratings per song (mean +/- SD; the last one missing for
    every other song), laid out as methods.rating_columns reads them."""
    rng = np.random.default_rng(1)
    n = len(targets)
    ratings = targets[:, None, :2] + targets[:, None, 2:] * rng.standard_normal((n, n_raters, 2))
    mask = np.ones((n, n_raters))
    mask[::2, -1] = 0.0
    ratings[mask == 0] = 0.0
    return np.concatenate([targets, ratings.reshape(n, -1), mask], axis=1)


def test_family_training_needs_the_ratings(data: TrainingData) -> None:
    with pytest.raises(ValueError, match="'quantile' needs the individual ratings"):
        train_stack("quantile", (0,), data, SMALL_MODEL, SHORT)


def test_rating_columns_round_trip() -> None:
    import torch

    targets = _with_ratings(np.arange(24, dtype=np.float64).reshape(6, 4) / 24)
    ratings, mask = methods.rating_columns(torch.as_tensor(targets))
    assert ratings.shape == (6, 5, 2) and mask.shape == (6, 5)
    assert not bool(mask[0, -1]) and bool(mask[1, -1])
    np.testing.assert_array_equal(ratings[:, :, 1].numpy(), targets[:, 5:15:2])


def test_nan_during_training_names_epoch_and_method(data, monkeypatch) -> None:
    calls = {"n": 0}
    spec = methods.TRAININGS["nll"]

    def poisoned(pred, target):
        calls["n"] += 1
        loss = spec.objective(pred, target)
        return loss * float("nan") if calls["n"] > 10 else loss

    monkeypatch.setitem(methods.TRAININGS, "nll", dataclasses.replace(spec, objective=poisoned))
    with pytest.raises(TrainingDivergedError, match=r"'nll'.*epoch 2.*seed\(s\) \[0\]"):
        train_stack("nll", (0,), data, SMALL_MODEL, SHORT)


@pytest.mark.parametrize(
    "training", [k for k, spec in methods.TRAININGS.items() if spec.objective_backward]
)
def test_written_out_loss_gradient_trains_exactly_as_autograd(data, training, monkeypatch):
    """The written-out loss gradients are a speed-up only: with autograd instead, every
    member trains to the same weights, bit for bit (with dropout, early stopping off)."""
    cfg = dataclasses.replace(SHORT, early_stopping_patience=10)
    model = dataclasses.replace(SMALL_MODEL, dropout=0.3)
    fast = train_stack(training, (0, 1, 2), data, model, cfg)
    spec = methods.TRAININGS[training]
    monkeypatch.setitem(
        methods.TRAININGS, training, dataclasses.replace(spec, objective_backward=None)
    )
    reference = train_stack(training, (0, 1, 2), data, model, cfg)
    assert torch.equal(fast.model.params.data, reference.model.params.data)
    np.testing.assert_array_equal(fast.best_val_loss, reference.best_val_loss)


def test_bad_inputs_are_named(data: TrainingData) -> None:
    with pytest.raises(methods.UnknownMethodError, match="unknown training key 'nope'"):
        train_stack("nope", (0,), data, SMALL_MODEL, SHORT)
    bad = data.x_train.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x_train has a non-finite value in row 3"):
        TrainingData(bad, data.t_train, data.x_valid, data.t_valid)
    with pytest.raises(ValueError, match="differ in dimension"):
        TrainingData(data.x_train, data.t_train, data.x_valid[:, :5], data.t_valid)
    with pytest.raises(ValueError, match="TrainConfig"):
        TrainConfig(lr=0.0)


def test_cpu_threads_restores_the_setting() -> None:
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(data: TrainingData) -> None:
    cpu = train_stack("nll", (0, 1), data, SMALL_MODEL, SHORT)
    gpu = train_stack("nll", (0, 1), data, SMALL_MODEL, dataclasses.replace(SHORT, device="cuda"))
    assert gpu.model.device.type == "cuda"
    np.testing.assert_allclose(
        _valid_predictions(gpu, data), _valid_predictions(cpu, data), rtol=1e-3, atol=1e-3
    )
