"""The paper's FCN, as a STACK of K independent members evaluated with batched matmuls.

Why a stack: the FCN is tiny (130 -> 128 -> 128 -> 4), so one training step of one model
costs far more in per-op overhead than in arithmetic. Training the seeds of one method as
one model with weights [K, fan_in, fan_out] pays the overhead once for K models. A single
model is simply K = 1 of the same code, so there is one implementation to trust.

Members are independent: member k's weights, gradients and optimiser state never mix with
another member's, and each member draws its initialisation, batches and dropout masks from
its own streams (`seed_streams(seed)`), so seed s trains the same alone or stacked.

All parameters live in ONE flat buffer (`FlatParameters`), each named tensor a contiguous
[K, ...] view into it: restoring the best weights of some members, or saving the model, is
one op on the buffer.

Architecture (Watcharasupat et al.): `depth` hidden layers of `hidden_width`, ELU, dropout
after every hidden layer; one linear output layer holding both heads: the mean head
mu = tanh(.) and, for two-output models, the spread head log sigma = -softplus(.)
(NegSoftPlus, sigma in (0, 1)). Valence and arousal are outputs of the same network.
A model of a distribution family beyond the Gaussian (`head`, see `mer_uq.heads`) has
n_params outputs per dimension instead, and trains through autograd.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mer_uq.config import DROPOUT_RESOLUTION, FCNConfig
from mer_uq.distribution import DiagGaussian
from mer_uq.heads import HEADS, Head, HeadOutput
from mer_uq.schema import DIMENSIONS

N_DIMS = len(DIMENSIONS)
@dataclass(frozen=True)
class SeedStreams:
    """Independent random streams of one member, all derived from its seed.

    Separate streams make a member's batches and dropout masks independent of what else
    was drawn: e.g. the MC-dropout masks do not depend on the epoch at which early
    stopping fired, nor on the other members of a stack.
    """

    init: torch.Generator
    batches: np.random.Generator
    dropout: np.random.Generator
    mc_dropout: np.random.Generator


def seed_streams(seed: int) -> SeedStreams:
    if seed < 0:
        raise ValueError(f"seeds must be >= 0, got {seed}")
    init, batches, dropout, mc_dropout = np.random.SeedSequence(seed).spawn(4)
    init_seed = int(init.generate_state(1, dtype=np.uint64)[0])
    return SeedStreams(
        init=torch.Generator().manual_seed(init_seed),
        batches=np.random.default_rng(batches),
        dropout=np.random.default_rng(dropout),
        mc_dropout=np.random.default_rng(mc_dropout),
    )


class DropoutCode:
    """Turns random bytes into inverted-dropout masks (0 or 1 / (1 - p)) for drop rate p."""

    def __init__(self, p: float) -> None:
        self.threshold = round(p * DROPOUT_RESOLUTION)
        self.p = self.threshold / DROPOUT_RESOLUTION
        self.scale = np.float32(1.0 / (1.0 - self.p)) if self.threshold < 256 else np.float32(0)

    @property
    def active(self) -> bool:
        return self.threshold > 0

    @staticmethod
    def random_bytes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)
        raw = rng.bit_generator.random_raw(-(-n // 8)).view(np.uint8)
        return raw[:n].reshape(shape)

    def masks(self, random_bytes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 masks, same shape as random_bytes (written into `out` when given)."""
        keep = random_bytes >= self.threshold
        return np.multiply(keep, self.scale, out=out, dtype=np.float32)


class FlatParameters:
    """Named [K, ...] parameter tensors that are views into one flat buffer.

    `member_of[i]` is the member owning flat element i, so a per-member choice ("this
    member improved") expands to the flat buffer with one gather.
    """

    def __init__(
        self, shapes: dict[str, tuple[int, ...]], device: torch.device | str = "cpu"
    ) -> None:
        sizes = {name: math.prod(shape) for name, shape in shapes.items()}
        self.data = torch.zeros(sum(sizes.values()), device=device)
        self.tensors: dict[str, Tensor] = {}
        member_of = []
        offset = 0
        for name, shape in shapes.items():
            end = offset + sizes[name]
            self.tensors[name] = torch.nn.Parameter(self.data[offset:end].view(shape))
            n_members = shape[0]
            member_of.append(torch.arange(n_members).repeat_interleave(sizes[name] // n_members))
            offset = end
        self.member_of = torch.cat(member_of).to(device)

    @property
    def names(self) -> list[str]:
        return list(self.tensors)

    def views(self, buffer: Tensor) -> dict[str, Tensor]:
        """The named [K, ...] views of another buffer laid out like `data` (a copy of the
        weights, e.g. the best ones so far)."""
        if buffer.shape != self.data.shape:
            raise ValueError(f"buffer has {buffer.numel()} values, need {self.data.numel()}")
        views, offset = {}, 0
        for name, tensor in self.tensors.items():
            views[name] = buffer[offset : offset + tensor.numel()].view(tensor.shape)
            offset += tensor.numel()
        return views

    @property
    def values(self) -> list[Tensor]:
        return list(self.tensors.values())


class StackedFCN:
    """K FCN members with stacked weights [K, fan_in, fan_out]; see the module docstring."""

    def __init__(
        self,
        in_features: int,
        config: FCNConfig,
        two_outputs: bool,
        seeds: tuple[int, ...] | list[int],
        device: torch.device | str = "cpu",
        head: str | None = None,
    ) -> None:
        if in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {in_features}")
        if len(seeds) == 0 or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be non-empty and distinct, got {list(seeds)}")
        self._setup(in_features, config, two_outputs, seeds, device, head)
        self.streams = [seed_streams(s) for s in self.seeds]
        self._initialise()

    def _setup(
        self,
        in_features: int,
        config: FCNConfig,
        two_outputs: bool,
        seeds: Sequence[int],
        device: torch.device | str,
        head: str | None = None,
    ) -> None:
        self.in_features = in_features
        # A family head of mer_uq.heads (autograd), or None for the paper's heads.
        self.head = None if head is None else _family_head(head)
        self.config = config
        self.two_outputs = two_outputs
        self.seeds = tuple(int(s) for s in seeds)
        self.device = torch.device(device)
        self.dropout = DropoutCode(config.dropout)
        k = len(self.seeds)
        widths = [in_features, *([config.hidden_width] * config.depth), self.out_features]
        self.layer_sizes = list(itertools.pairwise(widths))
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (fan_in, fan_out) in enumerate(self.layer_sizes):
            shapes[f"weight{i}"] = (k, fan_in, fan_out)
            shapes[f"bias{i}"] = (k, 1, fan_out)
        self.params = FlatParameters(shapes, self.device)
        # Each layer's weight and bias, in order: looked up once, not on every step.
        self.weights = [self.params.tensors[f"weight{i}"] for i in range(len(self.layer_sizes))]
        self.biases = [self.params.tensors[f"bias{i}"] for i in range(len(self.layer_sizes))]
        self._grads: list[Tensor] | None = None  # see _gradient_buffers

    def subset(self, members: Sequence[int]) -> StackedFCN:
        """A stack of some members (positions in this stack): copies of their weights,
        and the SAME stream objects, so each member goes on drawing where it was.

        Training moves to the members still active when others stop early: a stopped
        member then costs nothing. Results do not change, because a member computes the
        same alone or stacked (the batched kernels work member by member).
        """
        if not members or len(set(members)) != len(members):
            raise ValueError(f"members must be non-empty and distinct, got {list(members)}")
        part = object.__new__(StackedFCN)
        seeds = [self.seeds[i] for i in members]
        part._setup(self.in_features, self.config, self.two_outputs, seeds, self.device,
                    None if self.head is None else self.head.family)
        part.streams = [self.streams[i] for i in members]
        index = torch.as_tensor(list(members), device=self.device)
        with torch.no_grad():
            for name, tensor in part.params.tensors.items():
                tensor.copy_(self.params.tensors[name].index_select(0, index))
        return part

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    @property
    def out_features(self) -> int:
        if self.head is not None:
            return N_DIMS * self.head.n_params
        return N_DIMS * (2 if self.two_outputs else 1)

    def _initialise(self) -> None:
        """nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
        biases, drawn member by member from each member's own init stream."""
        with torch.no_grad():
            for k, streams in enumerate(self.streams):
                for i, (fan_in, fan_out) in enumerate(self.layer_sizes):
                    bound = 1.0 / math.sqrt(fan_in)
                    shapes = {f"weight{i}": (fan_in, fan_out), f"bias{i}": (1, fan_out)}
                    for name, shape in shapes.items():
                        draw = torch.rand(shape, generator=streams.init) * (2 * bound) - bound
                        self.params.tensors[name][k].copy_(draw)

    def check_features(self, x: Tensor | np.ndarray) -> None:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"feature dimension {x.shape[-1]} does not match the model's "
                f"{self.in_features} inputs"
            )

    def forward(
        self,
        x: Tensor,
        masks: list[Tensor] | None = None,
        members: slice | None = None,
    ) -> DiagGaussian | HeadOutput:
        """Outputs of every member (or of the `members` slice) for inputs x.

        x: [K, B, in] (one batch per member, as in training) or [B, in] (the same songs
        for every member). masks: one pre-scaled dropout mask per hidden layer,
        broadcastable to [K, B, width]; None = dropout off (evaluation). Masks come from
        the caller so that their randomness is owned by each member's stream.
        """
        return self._heads(self._linear(self.hidden(x, masks, members), -1, members))

    def hidden(
        self,
        x: Tensor,
        masks: list[Tensor] | None = None,
        members: slice | None = None,
    ) -> Tensor:
        """The last hidden layer's activations [K, B, width] (after ELU and dropout): the
        features the output layer is linear in (what a last-layer Laplace uses)."""
        self.check_features(x)
        h = x
        for i in range(len(self.layer_sizes) - 1):
            h = F.elu(self._linear(h, i, members))
            if masks is not None:
                h = h * masks[i]
        return h

    def _linear(self, h: Tensor, i: int, members: slice | None) -> Tensor:
        weight, bias = self.weights[i], self.biases[i]
        if members is not None:
            weight, bias = weight[members], bias[members]
        if h.dim() == 3 and h.shape[0] == weight.shape[0]:
            return torch.baddbmm(bias, h, weight)
        return torch.matmul(h, weight) + bias

    def _heads(self, out: Tensor) -> DiagGaussian | HeadOutput:
        if self.head is not None:
            return self.head(out, N_DIMS)
        if not self.two_outputs:
            return DiagGaussian(torch.tanh(out))
        mean_raw, spread_raw = out.split(N_DIMS, dim=-1)
        return DiagGaussian(torch.tanh(mean_raw), -F.softplus(spread_raw))

    def _heads_backward(
        self, out: Tensor, pred: DiagGaussian, grad_mu: Tensor, grad_sigma: Tensor | None
    ) -> Tensor:
        """Gradient with respect to the output layer of a loss whose gradients with
        respect to pred.mu and pred.sigma are given: autograd's formulas for tanh, exp,
        negation and softplus, on the same tensors (bit-identical)."""
        grad_mean = torch.ops.aten.tanh_backward(grad_mu, pred.mu)
        if not self.two_outputs:
            return grad_mean
        if grad_sigma is None:
            raise ValueError("a two-output model needs the loss's gradient for sigma")
        spread_raw = out[..., N_DIMS:]
        grad_log_sigma = grad_sigma * pred.sigma
        grad_spread = torch.ops.aten.softplus_backward(grad_log_sigma.neg(), spread_raw, 1, 20)
        return torch.cat([grad_mean, grad_spread], dim=-1)

    def loss_and_grads(
        self,
        x: Tensor,
        masks: list[Tensor] | None,
        member_loss: Callable[[DiagGaussian], Tensor],
        member_loss_backward: Callable[[DiagGaussian], tuple[Tensor, Tensor | None]]
        | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """One training step's forward and backward pass: each member's loss [K] (what
        `member_loss` makes of the outputs) and the gradients of their sum, in
        `params.values` order. x: [K, B, in]; masks as in `forward`.
        `member_loss_backward`, where given, returns the gradients of that sum with
        respect to the outputs' mu and sigma (written out, see `mer_uq.losses`);
        otherwise autograd differentiates `member_loss`. The gradients returned live in
        one buffer that the next call overwrites (see `_gradient_buffers`): use them,
        e.g. in the optimiser step, before the next step.

        The layers' backward is written out: the same kernels on the same tensors that
        autograd runs (BaddbmmBackward: bias sum over the batch, h^T g and g W^T by bmm;
        MulBackward for the mask; elu_backward), so the gradients are bit-identical to
        autograd's, without building and walking a graph of ~20 nodes every step.
        """
        self.check_features(x)
        weights, biases = self.weights, self.biases
        n_layers = len(weights)
        inputs: list[Tensor] = []  # each layer's input
        pre_activations: list[Tensor] = []
        with torch.no_grad():
            h = x
            for i in range(n_layers):
                inputs.append(h)
                h = torch.baddbmm(biases[i], h, weights[i])
                if i < n_layers - 1:
                    pre_activations.append(h)
                    h = F.elu(h)
                    if masks is not None:
                        h = h * masks[i]
            if member_loss_backward is not None:
                pred = self._heads(h)
                loss = member_loss(pred)
                grad = self._heads_backward(h, pred, *member_loss_backward(pred))
        if member_loss_backward is None:
            out = h.requires_grad_()
            with torch.enable_grad():
                loss = member_loss(self._heads(out))
                (grad,) = torch.autograd.grad(loss.sum(), out)
        grads = self._gradient_buffers()
        with torch.no_grad():
            for i in reversed(range(n_layers)):
                torch.bmm(inputs[i].transpose(1, 2), grad, out=grads[2 * i])
                torch.sum(grad, 1, keepdim=True, out=grads[2 * i + 1])
                if i > 0:
                    grad = grad.bmm(weights[i].transpose(1, 2))
                    if masks is not None:
                        grad = grad * masks[i - 1]
                    grad = _elu_backward(grad, 1.0, 1, 1, False, pre_activations[i - 1])
        return loss.detach(), grads

    def _gradient_buffers(self) -> list[Tensor]:
        """Where `loss_and_grads` writes the gradients: one flat buffer laid out like the
        parameters, made once and overwritten every step. Why: the ~2 MB of gradients
        of a 15-member stack, written to fresh memory each step, missed the caches;
        written in place they stay warm for the optimiser that reads them next."""
        if self._grads is None:
            buffer = torch.empty_like(self.params.data)
            self._grads = list(self.params.views(buffer).values())
        return self._grads


_elu_backward = torch.ops.aten.elu_backward.default


def _family_head(name: str) -> Head:
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(HEADS)}")
    return HEADS[name]
