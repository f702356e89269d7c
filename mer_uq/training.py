"""Training a stack of K FCN members (K seeds of one training key) as one vectorised model.

The recipe is the paper's: Adam (lr 1e-3); an epoch is 128 batches of 32 songs drawn from
the training split; up to 100 epochs; ReduceLROnPlateau (factor 0.9, patience 3, min lr
1e-5) on the validation loss; early stopping on the validation loss with the best weights
restored. Every piece of state that a single model would have is kept PER MEMBER: Adam's
moments and learning rate, the plateau counters, the early-stopping counters and best
weights. A member that stops no longer changes while the others go on: from the next
epoch the others train as a smaller stack (`StackedFCN.subset`), so a stopped member
costs no compute; training ends when every member has stopped.

Each member's batch order and dropout bytes come from its own streams
(`model.seed_streams`), drawn once per epoch: the hot loop has no RNG calls and no
host-device syncs (losses are accumulated on the device and read once per epoch).
Consequence, and the property the tests check: seed s trains to the same model alone
(K = 1) or stacked with other seeds. Not bit for bit: the batched matmuls and elementwise
ops compute each member as it would alone, but the fused Adam kernel rounds the last
numel % 8 elements of each tensor in a scalar tail, differently from its vector body,
and which output-bias values (4 or 2 per member) land there depends on the stack (see
StackedAdam). Training carries such last-bit differences on; the tests compare alone
and stacked to 1e-4 after short runs.

Songs per batch are drawn by concatenating fresh permutations of the training split (each
song is seen about equally often per epoch), a choice the paper does not specify.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mer_uq.config import TrainConfig
from mer_uq.methods import TrainingSpec, training_spec
from mer_uq.model import N_DIMS, FCNConfig, StackedFCN

EpochCallback = Callable[[dict[str, Any]], None]
TensorList = list[Tensor]


# How many cpu_threads blocks are open in this process (torch's settings are global).
_cpu_threads_depth = 0


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run with n torch CPU threads (0: unchanged) and denormals flushed to zero, then
    restore both (flushing is off by default in torch and has no getter).

    Flushing matters: with gradients and Adam moments of rarely active units decaying
    into the denormal range (< 1.2e-38), x86 arithmetic slows down by up to ~100x per op;
    measured on a stacked step, 3x slower overall. Flushed values change by < 1.2e-38.

    Entries nest (run_trial wraps train_stack, which enters again): only the outermost
    entry turns flushing off on exit, so prediction after training still runs flushed.
    Each entry restores the thread count it found.
    """
    global _cpu_threads_depth
    previous = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    outermost = _cpu_threads_depth == 0
    if outermost:
        torch.set_flush_denormal(True)
    _cpu_threads_depth += 1
    try:
        yield
    finally:
        _cpu_threads_depth -= 1
        if outermost:
            torch.set_flush_denormal(False)
        torch.set_num_threads(previous)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or inf; the message names the training key, epoch and seeds."""


@dataclass(frozen=True)
class TrainingData:
    """Standardised features and targets of the training and validation songs.

    Targets are [n, 2 * D]: the mean of each dimension, then the SD of each dimension (see
    `mer_uq.methods`).
    """

    x_train: np.ndarray
    t_train: np.ndarray
    x_valid: np.ndarray
    t_valid: np.ndarray

    def __post_init__(self) -> None:
        for name in ("x_train", "t_train", "x_valid", "t_valid"):
            array = getattr(self, name)
            if array.ndim != 2 or len(array) == 0:
                raise ValueError(
                    f"TrainingData.{name} must be a non-empty 2-D array, got shape {array.shape}"
                )
            if not np.all(np.isfinite(array)):
                row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
                raise ValueError(f"TrainingData.{name} has a non-finite value in row {row}")
        if len(self.x_train) != len(self.t_train) or len(self.x_valid) != len(self.t_valid):
            raise ValueError("features and targets must have the same number of songs")
        if self.x_train.shape[1] != self.x_valid.shape[1]:
            raise ValueError(
                f"training and validation features differ in dimension: "
                f"{self.x_train.shape[1]} vs {self.x_valid.shape[1]}"
            )


# ---------------------------------------------------------------- per-member optimiser state


class StackedAdam:
    """Adam (Kingma & Ba, 2015) over the [K, ...] parameter tensors, one lr per member.

    The update is torch.optim.Adam's (no weight decay, no amsgrad). It runs torch's fused
    CPU/CUDA Adam kernel (one pass over parameters, gradients and moments) instead of
    eight elementwise ops per tensor: per model-step that is the difference between the
    optimiser costing less than the matmuls or more. A fused call takes one learning rate,
    so members are grouped by their current lr (usually one group; a member with lr 0 has
    stopped and is left out, so neither its weights nor its moments change).
    `fused=False` (or a torch without the kernel) runs the same update op by op.

    How the members are split into tensors is part of the result: the fused kernel's
    scalar tail (the last numel % vector-width elements of each tensor) rounds
    differently from its vector body, which touches the 4- and 2-value output biases.
    The rule is fixed: whole stacked tensors while every member of the original stack
    trains at one lr, one slice per member otherwise (also on a `subset`, whose original
    stack had members stop). It is the rule every earlier run used, so results stay
    bit-identical to them.
    """

    def __init__(
        self,
        params: list[Tensor],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool | None = None,
    ) -> None:
        self.params = params
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.fused = hasattr(torch, "_fused_adam_") if fused is None else fused
        self.n_members = params[0].shape[0]
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        # The step count is shared: members step together (a stopped member never again).
        self.step_count = torch.zeros((), dtype=torch.float32, device=params[0].device)
        self._groups: list[tuple[float, list[int] | None]] = []
        # False on a subset: its original stack had stopped members (see the class doc).
        self.whole_stack = True

    def subset(self, members: list[int], params: list[Tensor]) -> StackedAdam:
        """The optimiser of some members (positions here), over `params` (the parameters
        of `StackedFCN.subset(members)`): their moments copied, the step count shared."""
        part = StackedAdam(params, (self.beta1, self.beta2), self.eps, self.fused)
        index = torch.as_tensor(members, device=self.step_count.device)
        for mine, theirs in ((self.exp_avg, part.exp_avg), (self.exp_avg_sq, part.exp_avg_sq)):
            for source, target in zip(mine, theirs, strict=True):
                target.copy_(source.index_select(0, index))
        part.step_count.copy_(self.step_count)
        part.whole_stack = False
        return part

    def set_member_lr(self, lr: np.ndarray) -> None:
        """lr: [K]; a member with lr 0 is frozen."""
        if lr.shape != (self.n_members,):
            raise ValueError(f"need {self.n_members} learning rates, got shape {lr.shape}")
        values = sorted({float(v) for v in lr if v > 0})
        if self.whole_stack and len(values) == 1 and bool(np.all(lr == values[0])):
            self._groups = [(values[0], None)]  # every member: whole stacked tensors
        else:
            self._groups = [(v, [k for k in range(self.n_members) if lr[k] == v]) for v in values]

    @torch.no_grad()
    def step(self, grads: list[Tensor] | tuple[Tensor, ...]) -> None:
        self.step_count.add_(1.0)
        for lr, members in self._groups:
            if members is None:
                lists = (self.params, list(grads), self.exp_avg, self.exp_avg_sq)
            else:
                lists = tuple(
                    [t[k] for t in tensors for k in members]
                    for tensors in (self.params, grads, self.exp_avg, self.exp_avg_sq)
                )
            if self.fused:
                self._fused_step(lr, *lists)
            else:
                self._plain_step(lr, *lists)

    def _fused_step(
        self,
        lr: float,
        params: TensorList,
        grads: TensorList,
        exp_avg: TensorList,
        exp_avg_sq: TensorList,
    ) -> None:
        torch._fused_adam_(
            params,
            grads,
            exp_avg,
            exp_avg_sq,
            [],
            [self.step_count] * len(params),
            lr=lr,
            beta1=self.beta1,
            beta2=self.beta2,
            weight_decay=0.0,
            eps=self.eps,
            amsgrad=False,
            maximize=False,
        )

    def _plain_step(
        self,
        lr: float,
        params: TensorList,
        grads: TensorList,
        exp_avg: TensorList,
        exp_avg_sq: TensorList,
    ) -> None:
        step = float(self.step_count)
        bias1 = 1.0 - self.beta1**step
        bias2_sqrt = (1.0 - self.beta2**step) ** 0.5
        for param, grad, m, v in zip(params, grads, exp_avg, exp_avg_sq, strict=True):
            m.lerp_(grad, 1.0 - self.beta1)
            v.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            param.addcdiv_(m, denom, value=-lr / bias1)


class PlateauSchedule:
    """ReduceLROnPlateau (mode min, relative threshold 1e-4, no cooldown), per member.

    Same rule as torch.optim.lr_scheduler.ReduceLROnPlateau, vectorised over members.
    """

    def __init__(
        self,
        n_members: int,
        lr: float,
        factor: float,
        patience: int,
        min_lr: float,
        threshold: float = 1e-4,
        eps: float = 1e-8,
    ) -> None:
        self.lr = np.full(n_members, lr, dtype=np.float64)
        self.best = np.full(n_members, np.inf)
        self.bad_epochs = np.zeros(n_members, dtype=np.int64)
        self.factor, self.patience, self.min_lr = factor, patience, min_lr
        self.threshold, self.eps = threshold, eps

    def step(self, loss: np.ndarray, active: np.ndarray) -> None:
        better = active & (loss < self.best * (1.0 - self.threshold))
        self.best = np.where(better, loss, self.best)
        self.bad_epochs = np.where(better, 0, self.bad_epochs + active)
        reduce = active & (self.bad_epochs > self.patience)
        new_lr = np.maximum(self.lr * self.factor, self.min_lr)
        self.lr = np.where(reduce & (self.lr - new_lr > self.eps), new_lr, self.lr)
        self.bad_epochs = np.where(reduce, 0, self.bad_epochs)


class EarlyStopping:
    """Per-member early stopping on the validation loss (strict improvement)."""

    def __init__(self, n_members: int, patience: int) -> None:
        self.patience = patience
        self.best = np.full(n_members, np.inf)
        self.best_epoch = np.zeros(n_members, dtype=np.int64)
        self.since_best = np.zeros(n_members, dtype=np.int64)
        self.active = np.ones(n_members, dtype=bool)

    def update(self, loss: np.ndarray, epoch: int) -> np.ndarray:
        """Record one epoch; returns which members improved (their weights are the best)."""
        improved = self.active & (loss < self.best)
        self.best = np.where(improved, loss, self.best)
        self.best_epoch = np.where(improved, epoch, self.best_epoch)
        self.since_best = np.where(improved, 0, self.since_best + self.active)
        self.active = self.active & (self.since_best < self.patience)
        return improved


# ---------------------------------------------------------------- per-epoch randomness


def epoch_batches(rng: np.random.Generator, n_songs: int, steps: int, batch: int) -> np.ndarray:
    """[steps, batch] song indices: consecutive fresh permutations of the split, cut."""
    needed = steps * batch
    reps = -(-needed // n_songs)
    order = np.concatenate([rng.permutation(n_songs) for _ in range(reps)])
    return order[:needed].reshape(steps, batch)


class EpochDropout:
    """The dropout masks of one epoch for every member and hidden layer.

    Each member's random bytes for the whole epoch come from its own stream in one call
    ([steps, depth, batch, width]); the float masks of one step are made just before the
    step, so the working set stays in cache. Masks are views of a buffer reused every step:
    autograd only needs them until that step's backward pass.
    """

    def __init__(self, model: StackedFCN, steps: int, batch: int, device: torch.device) -> None:
        cfg = model.config
        self.code = model.dropout
        self.depth = cfg.depth
        self.device = device
        shape = (steps, cfg.depth, batch, cfg.hidden_width)
        self.random_bytes = np.stack(
            [self.code.random_bytes(s.dropout, shape) for s in model.streams], axis=1
        )  # [steps, K, depth, batch, width]
        self._buffer = np.empty(self.random_bytes.shape[1:], dtype=np.float32)

    def step(self, step: int) -> list[Tensor]:
        masks = torch.from_numpy(self.code.masks(self.random_bytes[step], out=self._buffer))
        masks = masks.to(self.device, non_blocking=True)
        return [masks[:, i] for i in range(self.depth)]


# ---------------------------------------------------------------- the loop


@dataclass
class TrainedStack:
    """A trained stack (best weights restored) and how training went, per member."""

    model: StackedFCN
    training: str
    best_val_loss: np.ndarray  # [K]
    best_epoch: np.ndarray  # [K], 1-based
    epochs_trained: np.ndarray  # [K]
    history: list[dict[str, Any]] = field(default_factory=list)


def _epoch_record(
    epoch: int,
    seeds: tuple[int, ...],
    train_loss: np.ndarray,
    val_loss: np.ndarray,
    best: np.ndarray,
    lr: np.ndarray,
    active: np.ndarray,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": float(train_loss.mean()),
        "val_loss": float(val_loss.mean()),
        "best_val_loss": float(best.mean()),
        "lr": float(lr.mean()),
        "n_active": int(active.sum()),
    }
    for k, seed in enumerate(seeds):
        record[f"train_loss_seed{seed}"] = float(train_loss[k])
        record[f"val_loss_seed{seed}"] = float(val_loss[k])
        record[f"lr_seed{seed}"] = float(lr[k])
    return record


def _check_finite(key: str, epoch: int, what: str, loss: np.ndarray, seeds: tuple[int, ...]):
    bad = ~np.isfinite(loss)
    if bad.any():
        raise TrainingDivergedError(
            f"training {key!r}: non-finite {what} loss at epoch {epoch} for seed(s) "
            f"{[s for s, b in zip(seeds, bad, strict=True) if b]}"
        )


def train_epoch(
    model: StackedFCN,
    spec: TrainingSpec,
    adam: StackedAdam,
    x_train: Tensor,
    t_train: Tensor,
    cfg: TrainConfig,
) -> np.ndarray:
    """One epoch of every member; returns each member's mean training loss [K]. The
    training loop calls it, and so does SWAG's continuation of a converged stack.

    The per-step Python is kept to one forward-backward pass (`loss_and_grads`) and one
    fused optimiser step: indices, targets and dropout bytes are drawn for the whole
    epoch.
    """
    steps, batch = cfg.steps_per_epoch, cfg.batch_size
    k = model.n_members
    batches = np.stack(
        [epoch_batches(s.batches, len(x_train), steps, batch) for s in model.streams], axis=1
    )
    index = torch.as_tensor(batches, device=x_train.device)  # [steps, K, batch]
    targets = t_train[index]  # [steps, K, batch, 2D]
    dropout = EpochDropout(model, steps, batch, x_train.device) if model.dropout.active else None
    loss_sum = torch.zeros(k, device=x_train.device)
    upstream = member_mean_gradient((k, batch, N_DIMS), x_train.device)
    for step in range(steps):
        masks = None if dropout is None else dropout.step(step)
        # index_select on the flat indices: the same rows as x_train[index[step]], cheaper
        inputs = x_train.index_select(0, index[step].view(-1)).view(k, batch, -1)
        loss_sum += training_step(model, spec, adam, inputs, targets[step], masks, upstream)
    return (loss_sum / steps).cpu().numpy().astype(np.float64)


def training_step(
    model: StackedFCN,
    spec: TrainingSpec,
    adam: StackedAdam,
    inputs: Tensor,
    target: Tensor,
    masks: list[Tensor] | None,
    upstream: Tensor,
) -> Tensor:
    """One optimiser step of every member on one batch (inputs [K, B, in], target
    [K, B, 2D]); returns each member's loss [K]. `upstream` is `member_mean_gradient` of
    the batch's shape, made once per epoch. The loss's gradient is the written-out one
    where the key has it (`spec.objective_backward`), autograd's otherwise."""
    backward = spec.objective_backward
    member_loss, grads = model.loss_and_grads(
        inputs,
        masks,
        lambda pred: spec.objective(pred, target).mean(dim=(1, 2)),
        None if backward is None else lambda pred: backward(pred, target, upstream),
    )
    adam.step(grads)
    return member_loss


def member_mean_gradient(shape: tuple[int, int, int], device: torch.device) -> Tensor:
    """Gradient of sum over members of the mean over songs and dimensions, with respect to
    the elementwise loss [K, B, D]: 1 / (B D) everywhere, made as autograd makes it (the
    member sum's gradient expanded, then divided)."""
    k, batch, dims = shape
    return torch.ones(k, 1, 1, device=device).expand(shape) / (batch * dims)


def train_stack(
    training: str,
    seeds: tuple[int, ...] | list[int],
    data: TrainingData,
    model_config: FCNConfig | None = None,
    train_config: TrainConfig | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainedStack:
    """Train one member per seed for training key `training`; see the module docstring."""
    cfg = train_config or TrainConfig()
    with cpu_threads(cfg.cpu_threads):
        return _train_stack(training, seeds, data, model_config or FCNConfig(), cfg, on_epoch)


def _train_stack(
    training: str,
    seeds: tuple[int, ...] | list[int],
    data: TrainingData,
    model_config: FCNConfig,
    cfg: TrainConfig,
    on_epoch: EpochCallback | None,
) -> TrainedStack:
    spec = training_spec(training)
    device = resolve_device(cfg.device)
    seeds = tuple(int(s) for s in seeds)
    _check_target_columns(training, spec, data.t_train.shape[1])
    x_train, t_train = _as_tensor(data.x_train, device), _as_tensor(data.t_train, device)
    x_valid, t_valid = _as_tensor(data.x_valid, device), _as_tensor(data.t_valid, device)
    model = StackedFCN(x_train.shape[1], model_config, spec.two_outputs, seeds, device,
                       head=spec.head)
    k = model.n_members
    # Training runs on `work`, the members still active: their positions in `model` are
    # `working`. When members stop, the others move to a smaller stack (see
    # StackedFCN.subset), so stopped members cost no compute; a stopped member's weights
    # would not change anyway (its lr is 0), and only its best weights are kept.
    work, working = model, np.arange(k)
    adam = StackedAdam(work.params.values)
    plateau = PlateauSchedule(k, cfg.lr, cfg.lr_factor, cfg.patience, cfg.min_lr)
    stopper = EarlyStopping(k, cfg.early_stopping_patience)
    best_flat = model.params.data.detach().clone()
    best = model.params.views(best_flat)
    epochs_trained = np.zeros(k, dtype=np.int64)
    # A stopped member's losses stay those of its last epoch (its weights are frozen, so
    # its validation loss is exactly what recomputing it would give).
    train_loss = np.zeros(k)
    val_loss = np.zeros(k)
    history: list[dict[str, Any]] = []

    for epoch in range(1, cfg.epochs + 1):
        if not stopper.active[working].all():
            work, working, adam = _drop_stopped(work, working, adam, stopper.active)
        adam.set_member_lr(plateau.lr[working])
        epochs_trained += stopper.active
        train_loss[working] = train_epoch(work, spec, adam, x_train, t_train, cfg)
        _check_finite(training, epoch, "training", train_loss[working], work.seeds)
        val_loss[working] = _validation_loss(work, spec, x_valid, t_valid)
        _check_finite(training, epoch, "validation", val_loss[working], work.seeds)

        was_active = stopper.active.copy()
        improved = stopper.update(val_loss, epoch)
        if improved.any():
            _keep_best_weights(work, working, improved, best, device)
        plateau.step(val_loss, was_active)
        record = _epoch_record(
            epoch, seeds, train_loss, val_loss, stopper.best, plateau.lr, stopper.active
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if not stopper.active.any():
            break

    with torch.no_grad():
        model.params.data.copy_(best_flat)
    return TrainedStack(
        model=model,
        training=training,
        best_val_loss=stopper.best.copy(),
        best_epoch=stopper.best_epoch.copy(),
        epochs_trained=epochs_trained,
        history=history,
    )


def _validation_loss(work: StackedFCN, spec: TrainingSpec, x_valid: Tensor,
                     t_valid: Tensor) -> np.ndarray:
    """Each active member's validation objective, the mean over songs and dimensions."""
    with torch.no_grad():
        val_pred = work.forward(x_valid)
        per_member = spec.validation_objective(val_pred, t_valid).mean(dim=(1, 2))
    return per_member.cpu().numpy().astype(np.float64)


def _check_target_columns(training: str, spec: TrainingSpec, columns: int) -> None:
    """Fail before any model is built when the targets do not fit the training key: a
    key trained on individual ratings needs them after the 2 x N_DIMS song statistics."""
    if spec.individual_ratings:
        if columns <= 2 * N_DIMS:
            raise ValueError(f"training {training!r} needs the individual ratings in its "
                             f"targets (see methods.rating_columns), got {columns} columns")
    elif columns != 2 * N_DIMS:
        raise ValueError(f"targets must have {2 * N_DIMS} columns (means, then SDs), got {columns}")


def _as_tensor(a: np.ndarray, device: torch.device) -> Tensor:
    """float32, contiguous, on the training device: the one form every batch is cut from."""
    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=device)


def _drop_stopped(
    work: StackedFCN, working: np.ndarray, adam: StackedAdam, active: np.ndarray
) -> tuple[StackedFCN, np.ndarray, StackedAdam]:
    """The members still active, moved (with their optimiser state) to a smaller stack."""
    keep = np.flatnonzero(active[working]).tolist()
    smaller = work.subset(keep)
    return smaller, working[keep], adam.subset(keep, smaller.params.values)


def _keep_best_weights(work: StackedFCN, working: np.ndarray, improved: np.ndarray,
                       best: dict[str, Tensor], device: torch.device) -> None:
    """Copy the weights of the members whose validation loss improved into ``best``
    (indexed by position in the full stack; ``work`` holds only the active members)."""
    rows = np.flatnonzero(improved[working])
    source = torch.as_tensor(rows, device=device)
    target = torch.as_tensor(working[rows], device=device)
    with torch.no_grad():
        for name, weights in work.params.tensors.items():
            best[name][target] = weights.detach().index_select(0, source)
