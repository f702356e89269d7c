"""SWAG: SWA-Gaussian (Maddox, Izmailov, Garipov, Vetrov & Wilson, NeurIPS 2019), diagonal
plus low rank, on a stack of converged mean-only models.

What it estimates: MODEL (epistemic) uncertainty, like random seeds and MC dropout: the
spread of the mean over weights the optimiser visits around one converged solution, with
no noise term. The predictive is the Bayesian model average over sampled weights: mean
and SD of mu over `n_samples` draws (dropout off).

Schedule (ours; the paper collects once per epoch at a constant, high SGD learning rate):
the `swag` training key first trains exactly the `mean` key's model (same seeds, same
recipe, early stopping, best weights restored), then continues every member of the stack
for `SWAG_EPOCHS` epochs of the same batches-and-dropout recipe with a fresh Adam at the
constant initial learning rate (TrainConfig.lr, no plateau schedule, no early stopping),
and takes one snapshot of the weights at the end of each epoch. Adam instead of SGD: the
mean model was trained with Adam, whose per-weight steps make one learning rate fit every
layer; the moments are SWAG's whatever produced the iterates.

Moments of the T snapshots theta_1..theta_T, per weight (the flat parameter buffer, so
every member at once and each member only from its own iterates):

* mean theta_bar = (1/T) sum theta_i; second moment (1/T) sum theta_i²;
* diagonal Sigma_diag = max(second moment - theta_bar², 0);
* deviation matrix D: the last R of the columns theta_i - theta_bar_i, where theta_bar_i
  is the running mean after snapshot i (the paper's Algorithm 1).

A sample is theta = theta_bar + (1/sqrt 2) Sigma_diag^(1/2) z1 + (1/sqrt(2 (R - 1))) D z2,
z1 ~ N(0, I_weights), z2 ~ N(0, I_R), drawn per member from its own stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mer_uq.config import TrainConfig
from mer_uq.methods import training_spec
from mer_uq.model import N_DIMS, StackedFCN
from mer_uq.training import StackedAdam, TrainingData, train_epoch

SWAG_EPOCHS = 20  # epochs after convergence, one snapshot each
SWAG_RANK = 20  # columns of the deviation matrix (the paper's K = 20)
SWAG_SAMPLES = 30  # weight samples per prediction (the paper's S = 30)
# SeedSequence child of a member's seed for its SWAG draws: children 0..3 are the
# member's init, batches, dropout and MC-dropout streams (mer_uq.model.seed_streams).
_SWAG_STREAM = 4


@dataclass(frozen=True)
class SwagMoments:
    """SWAG's moments over the flat parameter buffer ([P] each; deviations [R, P])."""

    mean: np.ndarray
    sq_mean: np.ndarray
    deviations: np.ndarray
    n_snapshots: int

    @property
    def diag_var(self) -> np.ndarray:
        return np.maximum(self.sq_mean - self.mean * self.mean, 0.0)

    @property
    def rank(self) -> int:
        return int(self.deviations.shape[0])


def swag_moments(snapshots: np.ndarray, rank: int = SWAG_RANK) -> SwagMoments:
    """Moments of snapshots [T, P] (in the order they were taken), keeping the last `rank`
    deviations from the running mean."""
    snapshots = np.asarray(snapshots, dtype=np.float64)
    if snapshots.ndim != 2 or snapshots.shape[0] < 2:
        raise ValueError(f"SWAG needs at least 2 snapshots [T, P], got {snapshots.shape}")
    if rank < 2:
        raise ValueError(f"SWAG rank must be >= 2, got {rank}")
    running = np.cumsum(snapshots, axis=0) / np.arange(1, len(snapshots) + 1)[:, None]
    deviations = (snapshots - running)[-rank:]
    return SwagMoments(snapshots.mean(axis=0), (snapshots * snapshots).mean(axis=0),
                       deviations, len(snapshots))


def collect_swag(model: StackedFCN, training: str, data: TrainingData, cfg: TrainConfig,
                 epochs: int = SWAG_EPOCHS, rank: int = SWAG_RANK) -> SwagMoments:
    """Continue every member of a converged stack for `epochs` epochs (constant lr, fresh
    Adam) and return the moments of the end-of-epoch snapshots. `model` is left at its
    converged weights; its batch and dropout streams advance."""
    if epochs < 2:
        raise ValueError(f"SWAG needs at least 2 epochs of snapshots, got {epochs}")
    spec = training_spec(training)
    device = model.device

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=device)

    x_train, t_train = tensor(data.x_train), tensor(data.t_train)
    converged = model.params.data.detach().clone()
    adam = StackedAdam(model.params.values)
    adam.set_member_lr(np.full(model.n_members, cfg.lr))
    snapshots = []
    for _ in range(epochs):
        train_epoch(model, spec, adam, x_train, t_train, cfg)
        snapshots.append(model.params.data.detach().double().cpu().numpy().copy())
    with torch.no_grad():
        model.params.data.copy_(converged)
    return swag_moments(np.stack(snapshots), min(rank, epochs))


def sample_weights(model: StackedFCN, moments: SwagMoments, rngs: list[np.random.Generator]
                   ) -> np.ndarray:
    """One SWAG draw of the flat buffer; member k's weights from rngs[k] only."""
    member_of = model.params.member_of.cpu().numpy()
    z1 = np.empty(member_of.size)
    low_rank = np.empty(member_of.size)
    for k, rng in enumerate(rngs):
        mine = member_of == k
        z1[mine] = rng.standard_normal(int(mine.sum()))
        z2 = rng.standard_normal(moments.rank)
        low_rank[mine] = z2 @ moments.deviations[:, mine]
    return (moments.mean + np.sqrt(moments.diag_var / 2.0) * z1
            + low_rank / np.sqrt(2.0 * (moments.rank - 1)))


def swag_predict(model: StackedFCN, moments: SwagMoments, x: np.ndarray,
                 n_samples: int = SWAG_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD (ddof 1, as MC dropout's eq. 7) of mu over `n_samples` SWAG weight
    samples, dropout off: [K, N, D] each. The model keeps its own weights."""
    if n_samples < 2:
        raise ValueError(f"SWAG prediction needs at least 2 samples, got {n_samples}")
    rngs = [np.random.default_rng(np.random.SeedSequence(s, spawn_key=(_SWAG_STREAM,)))
            for s in model.seeds]
    inputs = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=model.device)
    kept = model.params.data.detach().clone()
    draws = np.empty((n_samples, model.n_members, len(x), N_DIMS))
    try:
        with torch.no_grad():
            for s in range(n_samples):
                theta = sample_weights(model, moments, rngs)
                model.params.data.copy_(torch.as_tensor(theta, dtype=torch.float32))
                draws[s] = model.forward(inputs).mu.double().cpu().numpy()
    finally:
        with torch.no_grad():
            model.params.data.copy_(kept)
    return draws.mean(axis=0), draws.std(axis=0, ddof=1)
