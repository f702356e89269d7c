"""Output heads beyond the Gaussian one, and their training losses, in torch.

The paper's two-output head (mu = tanh, log sigma = -softplus) lives in `mer_uq.model`
with its written-out gradients. A head here maps the FCN's last linear layer, laid out as
[..., n_params, D] (parameter-major, the dimensions in `schema.DIMENSIONS` order), to the
parameters of one family of `mer_uq.families`, and trains through autograd. Each loss is
elementwise [..., D], computed per individual rating and averaged over the song's ratings
(as `losses.rater_nll` is), or on the song mean for a `_mean` training.

* `student_t`: loc = tanh, scale = exp(-softplus) (as sigma), df = DF_MIN + softplus:
  the degrees of freedom are learned per song and bounded above 2 (DF_MIN = 2.5), so the
  SD = scale sqrt(df / (df - 2)) exists and stays below 2.24 scale.
* `nig`: deep evidential regression (Amini et al., 2020, "Deep Evidential Regression"):
  gamma = tanh, nu = softplus, alpha = 1 + softplus, beta = softplus (each + a small
  floor). Loss: the NIG marginal NLL (their eq. 8) plus LAMBDA_EVIDENCE times the
  evidence regulariser |y - gamma| (2 nu + alpha) (their eq. 9).
* `gaussian_mixture`: two Gaussian components; weight sigmoid, locs tanh, scales
  exp(-softplus). Loss: the mixture NLL (log-sum-exp).
* `quantile`: the quantiles at `families.QUANTILE_LEVELS`; the median is tanh and the
  others step away from it by softplus increments, so they are increasing by
  construction. Loss: the pinball (quantile) loss averaged over the levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mer_uq.families import QUANTILE_LEVELS, quantile_param

SCALE_FLOOR = 1e-3  # as losses.SIGMA_FLOOR
DF_MIN = 2.5
NIG_FLOOR = 1e-4
LAMBDA_EVIDENCE = 0.01  # Amini et al.'s regulariser weight (their experiments: 1e-2)
QUANTILE_GAP = 1e-4  # the least step between neighbouring quantiles


@dataclass(frozen=True)
class HeadOutput:
    """The family parameters of every (member, song, dimension): each [..., D]."""

    family: str
    params: dict[str, Tensor]

    def __getitem__(self, name: str) -> Tensor:
        return self.params[name]


def _spread(raw: Tensor) -> Tensor:
    return torch.clamp(torch.exp(-F.softplus(raw)), min=SCALE_FLOOR)


def _student_t(raw: Tensor) -> dict[str, Tensor]:
    return {"df": DF_MIN + F.softplus(raw[..., 2, :]), "loc": torch.tanh(raw[..., 0, :]),
            "scale": _spread(raw[..., 1, :])}


def _nig(raw: Tensor) -> dict[str, Tensor]:
    return {"gamma": torch.tanh(raw[..., 0, :]),
            "nu": F.softplus(raw[..., 1, :]) + NIG_FLOOR,
            "alpha": 1.0 + F.softplus(raw[..., 2, :]) + NIG_FLOOR,
            "beta": F.softplus(raw[..., 3, :]) + NIG_FLOOR}


def _mixture(raw: Tensor) -> dict[str, Tensor]:
    return {"w1": torch.sigmoid(raw[..., 0, :]), "loc1": torch.tanh(raw[..., 1, :]),
            "scale1": _spread(raw[..., 2, :]), "loc2": torch.tanh(raw[..., 3, :]),
            "scale2": _spread(raw[..., 4, :])}


_MEDIAN = QUANTILE_LEVELS.index(0.5)


def _quantiles(raw: Tensor) -> dict[str, Tensor]:
    median = torch.tanh(raw[..., _MEDIAN, :])
    steps = F.softplus(raw) + QUANTILE_GAP
    centre = median.unsqueeze(-2)
    below = centre - torch.cumsum(steps[..., :_MEDIAN, :].flip(-2), dim=-2)  # nearest first
    above = centre + torch.cumsum(steps[..., _MEDIAN + 1:, :], dim=-2)
    knots = torch.cat([below.flip(-2), centre, above], dim=-2)
    return {quantile_param(t): knots[..., i, :] for i, t in enumerate(QUANTILE_LEVELS)}


@dataclass(frozen=True)
class Head:
    """A family's head: how many raw outputs per dimension and how they become params."""

    family: str
    n_params: int
    make: Callable[[Tensor], dict[str, Tensor]]

    def __call__(self, out: Tensor, n_dims: int) -> HeadOutput:
        raw = out.unflatten(-1, (self.n_params, n_dims))
        return HeadOutput(self.family, self.make(raw))


HEADS: dict[str, Head] = {
    head.family: head
    for head in (
        Head("student_t", 3, _student_t),
        Head("nig", 4, _nig),
        Head("gaussian_mixture", 5, _mixture),
        Head("quantile", len(QUANTILE_LEVELS), _quantiles),
    )
}


# ---------------------------------------------------------------- losses per observation
# y: [..., D] broadcast against the parameters; each returns [..., D].


def student_t_nll(p: HeadOutput, y: Tensor) -> Tensor:
    df, loc, scale = p["df"], p["loc"], p["scale"]
    z = (y - loc) / scale
    return (torch.lgamma(0.5 * df) - torch.lgamma(0.5 * (df + 1.0))
            + 0.5 * torch.log(math.pi * df) + torch.log(scale)
            + 0.5 * (df + 1.0) * torch.log1p(z * z / df))


def nig_nll(p: HeadOutput, y: Tensor) -> Tensor:
    """Amini et al. (2020) eq. 8: the NIG marginal NLL of y (a Student-t's)."""
    gamma, nu, alpha, beta = p["gamma"], p["nu"], p["alpha"], p["beta"]
    omega = 2.0 * beta * (1.0 + nu)
    return (0.5 * torch.log(math.pi / nu) - alpha * torch.log(omega)
            + (alpha + 0.5) * torch.log(nu * (y - gamma) ** 2 + omega)
            + torch.lgamma(alpha) - torch.lgamma(alpha + 0.5))


def nig_evidence_regulariser(p: HeadOutput, y: Tensor) -> Tensor:
    """Amini et al. (2020) eq. 9: |y - gamma| times the evidence 2 nu + alpha."""
    return torch.abs(y - p["gamma"]) * (2.0 * p["nu"] + p["alpha"])


def evidential_loss(p: HeadOutput, y: Tensor, lam: float = LAMBDA_EVIDENCE) -> Tensor:
    return nig_nll(p, y) + lam * nig_evidence_regulariser(p, y)


def _normal_log_pdf(y: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    z = (y - loc) / scale
    return -0.5 * z * z - torch.log(scale) - 0.5 * math.log(2.0 * math.pi)


def mixture_nll(p: HeadOutput, y: Tensor) -> Tensor:
    w1 = torch.clamp(p["w1"], 1e-6, 1.0 - 1e-6)
    first = torch.log(w1) + _normal_log_pdf(y, p["loc1"], p["scale1"])
    second = torch.log1p(-w1) + _normal_log_pdf(y, p["loc2"], p["scale2"])
    return -torch.logaddexp(first, second)


def pinball_loss(p: HeadOutput, y: Tensor) -> Tensor:
    """Mean over QUANTILE_LEVELS of the pinball loss max(t (y - q), (t - 1) (y - q))."""
    knots = torch.stack([p[quantile_param(t)] for t in QUANTILE_LEVELS], dim=-2)  # [.., m, D]
    levels = torch.as_tensor(QUANTILE_LEVELS, dtype=knots.dtype, device=knots.device)
    diff = y.unsqueeze(-2) - knots
    # max(t d, (t - 1) d) = d (t - [d < 0]): one product, whose gradient is one product too
    weight = levels.unsqueeze(-1) - (diff < 0).to(diff.dtype)
    return (diff * weight).mean(dim=-2)


LOSSES: dict[str, Callable[[HeadOutput, Tensor], Tensor]] = {
    "student_t": student_t_nll,
    "nig": evidential_loss,
    "gaussian_mixture": mixture_nll,
    "quantile": pinball_loss,
}


def per_rating_loss(family: str, p: HeadOutput, ratings: Tensor, mask: Tensor) -> Tensor:
    """Mean over each song's ratings of the family's loss: ratings [..., R, D], mask
    [..., R] (True where a rating exists), parameters [..., D]; returns [..., D]."""
    loss = LOSSES[family]
    expanded = HeadOutput(p.family, {k: v.unsqueeze(-2) for k, v in p.params.items()})
    per = loss(expanded, ratings)  # [..., R, D]
    weight = mask.to(per.dtype).unsqueeze(-1)
    return (per * weight).sum(dim=-2) / weight.sum(dim=-2)
