"""The one object a model's output becomes: a diagonal Gaussian per song and dimension.

Every loss, prediction combiner and metric consumes this instead of loose (mu, sigma)
pairs, so a mean-only model and a two-output model flow through the same code (the
mean-only one simply has no spread), and valence and arousal always travel together in
the last axis (`schema.DIMENSIONS` order).

The spread is kept as log sigma because the network produces it that way (NegSoftPlus,
log sigma = -softplus(z)): sigma is derived, never stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from mer_uq.schema import DIMENSIONS


@dataclass(frozen=True)
class DiagGaussian:
    """N(mu, sigma^2) independently per (member, song, dimension).

    mu: [..., len(DIMENSIONS)]; log_sigma: same shape, or None for a mean-only model.
    The leading axes are free: [songs, D] for one model, [members, songs, D] for a stack.
    """

    mu: Tensor
    log_sigma: Tensor | None = None

    def __post_init__(self) -> None:
        if self.mu.shape[-1] != len(DIMENSIONS):
            raise ValueError(
                f"last axis must hold the {len(DIMENSIONS)} dimensions {DIMENSIONS}, "
                f"got shape {tuple(self.mu.shape)}"
            )
        if self.log_sigma is not None and self.log_sigma.shape != self.mu.shape:
            raise ValueError(
                f"log_sigma shape {tuple(self.log_sigma.shape)} != mu shape {tuple(self.mu.shape)}"
            )

    @cached_property
    def sigma(self) -> Tensor:
        """exp(log_sigma), computed once: a loss and its written-out gradient share it."""
        if self.log_sigma is None:
            raise ValueError("mean-only prediction has no sigma")
        return torch.exp(self.log_sigma)
