"""Training losses, elementwise: tensors in, a tensor of the broadcast shape out (no reduction).

Notation per song and dimension: mu_hat, sigma_hat predicted; mu, sigma the raters' mean
and SD (normalised scale); r = mu_hat - mu.

The paper's printed forms (Watcharasupat et al.), implemented as printed because they are
what reproduces the paper:

* `mse_paper`  (eq. 1): r^2 + (sigma_hat^2 - sigma^2)^2
* `kld_paper`  (eq. 2): 0.5 (r / sigma_hat)^2 - log sigma_hat + 0.5 sigma_hat^2 / sigma^2
* `nll_paper`  (eq. 3): 0.5 (r / sigma_hat)^2 + 0.5 log sigma_hat

Eq. 3 halves the log term, so its optimum is sigma_hat^2 = 2 r^2, not r^2; eq. 2 divides r
by sigma_hat where the exact KL divides by sigma. The exact forms therefore live beside
them under their own names:

* `gaussian_nll`: log sigma_hat + 0.5 (r / sigma_hat)^2, equal to torch.nn.GaussianNLLLoss
  (full=False, reduction='none');
* `kl_gaussian`: KL(N(mu_hat, sigma_hat^2) || N(mu, sigma^2)), the direction of eq. 2;
* `beta_nll`: Seitzer et al. (2022), "On the pitfalls of heteroscedastic uncertainty
  estimation with probabilistic neural networks": the NLL weighted by a stop-gradient
  sigma_hat^(2 beta), so that badly fitted, high-variance songs do not stall the mean;
* `rater_nll`: Gaussian NLL of every individual rating (each rater's normalised rating is
  a sample of the song's distribution), and `rater_nll_moments`, the same number from the
  ratings' mean and population variance (the sufficient statistics), which training uses.
  Its optimum is sigma_hat^2 = r^2 + sigma^2: unlike the NLL of the mean, it is pulled
  toward the raters' spread, which is what the study wants to predict.
* `mse_mean`: plain squared error of the mean, for mean-only models.

Gradients written out (`*_backward`, for the training loss of each paper method): given
the upstream gradient `grad` of the elementwise loss, each returns the gradients with
respect to mu_hat and sigma_hat. They run the very ops autograd's derivative formulas run
on these graphs (pow: grad * (2 * x); division: grad / b and -grad * ((a / b) / b); log:
grad / x; clamp: where(x >= floor, grad, 0)), and sum the contributions to sigma_hat in
the order the autograd engine does, so the gradients are bit-identical to autograd's
(tested). Why: for tiny networks the autograd engine's bookkeeping costs more than the
loss's arithmetic; measured on a 15-member stacked step (130-d, 'nll' and 'kld'), the
written-out gradient saved 0.1-0.25 ms of 2.4-2.9 ms, with every trained weight unchanged.
Losses without one train through autograd.

Numerical guards (documented, tested): sigma_hat is floored at SIGMA_FLOOR = 1e-3 (so
sigma_hat^2 >= 1e-6, the same floor as GaussianNLLLoss's default eps); a target SD that
appears in a denominator (KLD forms) is floored at TARGET_SD_FLOOR = 0.02, a tenth of one
scale point and below any nonzero SD that 10 integer ratings can have (0.06), so real DEAM
targets are never altered while a song whose raters all agree (sigma = 0, possible in the
synthetic data) no longer divides by zero.
"""

from __future__ import annotations

import torch
from torch import Tensor

SIGMA_FLOOR = 1e-3
TARGET_SD_FLOOR = 0.02
DEFAULT_BETA = 0.5


def _floor(sigma: Tensor, floor: float) -> Tensor:
    return torch.clamp(sigma, min=floor)


def mse_mean(mu_hat: Tensor, mu: Tensor) -> Tensor:
    """Squared error of the mean: the loss of the mean-only model (seeds, MC dropout)."""
    return (mu_hat - mu) ** 2


def mse_paper(mu_hat: Tensor, sigma_hat: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """Eq. 1 as printed: squared error of the mean plus squared error of the variance."""
    return (mu_hat - mu) ** 2 + (sigma_hat**2 - sigma**2) ** 2


def kld_paper(mu_hat: Tensor, sigma_hat: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """Eq. 2 as printed (r scaled by sigma_hat, not sigma; constants dropped)."""
    sigma_hat = _floor(sigma_hat, SIGMA_FLOOR)
    sigma = _floor(sigma, TARGET_SD_FLOOR)
    return (
        0.5 * ((mu_hat - mu) / sigma_hat) ** 2
        - torch.log(sigma_hat)
        + 0.5 * (sigma_hat / sigma) ** 2
    )


def nll_paper(mu_hat: Tensor, sigma_hat: Tensor, mu: Tensor) -> Tensor:
    """Eq. 3 as printed (0.5 log sigma_hat: optimum sigma_hat^2 = 2 r^2)."""
    sigma_hat = _floor(sigma_hat, SIGMA_FLOOR)
    return 0.5 * ((mu_hat - mu) / sigma_hat) ** 2 + 0.5 * torch.log(sigma_hat)


def gaussian_nll(mu_hat: Tensor, sigma_hat: Tensor, y: Tensor) -> Tensor:
    """Exact Gaussian NLL of y without the 0.5 log(2 pi) constant (= GaussianNLLLoss)."""
    sigma_hat = _floor(sigma_hat, SIGMA_FLOOR)
    return torch.log(sigma_hat) + 0.5 * ((y - mu_hat) / sigma_hat) ** 2


def kl_gaussian(mu_hat: Tensor, sigma_hat: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """Exact KL(N(mu_hat, sigma_hat^2) || N(mu, sigma^2)), the direction eq. 2 approximates."""
    sigma_hat = _floor(sigma_hat, SIGMA_FLOOR)
    sigma = _floor(sigma, TARGET_SD_FLOOR)
    return (
        torch.log(sigma / sigma_hat) + (sigma_hat**2 + (mu_hat - mu) ** 2) / (2.0 * sigma**2) - 0.5
    )


def mse_mean_backward(grad: Tensor, mu_hat: Tensor, mu: Tensor) -> Tensor:
    """d/d mu_hat of sum(grad * mse_mean(mu_hat, mu)), as autograd computes it."""
    return grad * (2.0 * (mu_hat - mu))


def mse_paper_backward(
    grad: Tensor, mu_hat: Tensor, sigma_hat: Tensor, mu: Tensor, sigma: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradients of sum(grad * mse_paper(...)) with respect to (mu_hat, sigma_hat)."""
    grad_var = grad * (2.0 * (sigma_hat**2 - sigma**2))
    return grad * (2.0 * (mu_hat - mu)), grad_var * (2.0 * sigma_hat)


def kld_paper_backward(
    grad: Tensor, mu_hat: Tensor, sigma_hat: Tensor, mu: Tensor, sigma: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradients of sum(grad * kld_paper(...)) with respect to (mu_hat, sigma_hat).

    sigma_hat gets three contributions; autograd adds the log term's and the
    (sigma_hat / sigma)^2 term's first, then the residual term's.
    """
    floored = _floor(sigma_hat, SIGMA_FLOOR)
    sigma = _floor(sigma, TARGET_SD_FLOOR)
    residual = mu_hat - mu
    grad_z = (grad * 0.5) * (2.0 * (residual / floored))
    from_residual = -grad_z * ((residual / floored) / floored)
    from_log = (-grad) / floored
    from_ratio = ((grad * 0.5) * (2.0 * (floored / sigma))) / sigma
    grad_floored = (from_log + from_ratio) + from_residual
    return grad_z / floored, _floor_backward(grad_floored, sigma_hat, SIGMA_FLOOR)


def nll_paper_backward(
    grad: Tensor, mu_hat: Tensor, sigma_hat: Tensor, mu: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradients of sum(grad * nll_paper(...)) with respect to (mu_hat, sigma_hat)."""
    floored = _floor(sigma_hat, SIGMA_FLOOR)
    residual = mu_hat - mu
    grad_z = (grad * 0.5) * (2.0 * (residual / floored))
    from_residual = -grad_z * ((residual / floored) / floored)
    from_log = (grad * 0.5) / floored
    grad_floored = from_log + from_residual
    return grad_z / floored, _floor_backward(grad_floored, sigma_hat, SIGMA_FLOOR)


def _floor_backward(grad: Tensor, sigma: Tensor, floor: float) -> Tensor:
    """clamp's gradient: passed where sigma >= floor (the subgradient 1 at the floor)."""
    return torch.where(sigma >= floor, grad, torch.zeros((), dtype=grad.dtype, device=grad.device))


def beta_nll(mu_hat: Tensor, sigma_hat: Tensor, y: Tensor, beta: float = DEFAULT_BETA) -> Tensor:
    """beta-NLL (Seitzer et al., 2022): NLL x stop_grad(sigma_hat^(2 beta)).

    beta = 0 is the NLL; beta = 1 gives the mean the gradient of the MSE. The weight is
    detached, so the loss VALUE is scaled but the optimum of sigma_hat is unchanged.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta-NLL needs beta in [0, 1], got {beta}")
    sigma_hat = _floor(sigma_hat, SIGMA_FLOOR)
    weight = (sigma_hat.detach() ** 2) ** beta
    return weight * gaussian_nll(mu_hat, sigma_hat, y)


def rater_nll(mu_hat: Tensor, sigma_hat: Tensor, ratings: Tensor, mask: Tensor) -> Tensor:
    """Mean Gaussian NLL of a song's individual ratings, by definition.

    ratings, mask: [..., R] (R raters, padded; mask True where a rating exists);
    mu_hat, sigma_hat: [...]. Returns [...]. Songs differ in rater count, hence the mask.
    """
    counts = mask.sum(dim=-1)
    if bool((counts == 0).any()):
        raise ValueError("rater_nll: a song has no ratings (mask all False)")
    per_rating = gaussian_nll(mu_hat.unsqueeze(-1), sigma_hat.unsqueeze(-1), ratings)
    return torch.where(mask, per_rating, torch.zeros_like(per_rating)).sum(dim=-1) / counts


def rater_nll_moments(
    mu_hat: Tensor, sigma_hat: Tensor, rating_mean: Tensor, rating_var: Tensor
) -> Tensor:
    """`rater_nll` from the ratings' mean and population variance (ddof=0), exactly:

    mean_j [log s + (y_j - mu_hat)^2 / (2 s^2)] = log s + ((m - mu_hat)^2 + v) / (2 s^2).
    One gather per batch instead of R, so training on raters costs what training on means
    costs.
    """
    sigma_hat = _floor(sigma_hat, SIGMA_FLOOR)
    return torch.log(sigma_hat) + ((mu_hat - rating_mean) ** 2 + rating_var) / (2.0 * sigma_hat**2)
