"""Losses against torch references, independent closed forms and their known optima."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from mer_uq import losses


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = 64
    return {
        "mu_hat": torch.rand(n, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8,
        "sigma_hat": torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.6 + 0.05,
        "mu": torch.rand(n, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8,
        "sigma": torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.4 + 0.06,
    }


def test_gaussian_nll_equals_torch_gaussian_nll_loss(batch) -> None:
    ours = losses.gaussian_nll(batch["mu_hat"], batch["sigma_hat"], batch["mu"])
    ref = torch.nn.GaussianNLLLoss(reduction="none")(
        batch["mu_hat"], batch["mu"], batch["sigma_hat"] ** 2
    )
    torch.testing.assert_close(ours, ref)


def test_kl_gaussian_equals_torch_kl_divergence(batch) -> None:
    ours = losses.kl_gaussian(batch["mu_hat"], batch["sigma_hat"], batch["mu"], batch["sigma"])
    ref = kl_divergence(
        Normal(batch["mu_hat"], batch["sigma_hat"]), Normal(batch["mu"], batch["sigma"])
    )
    torch.testing.assert_close(ours, ref)


def test_printed_forms_match_the_paper_equations(batch) -> None:
    mh, sh, mu, s = (batch[k].numpy() for k in ("mu_hat", "sigma_hat", "mu", "sigma"))
    r = mh - mu
    eq1 = r**2 + (sh**2 - s**2) ** 2
    eq2 = 0.5 * (r / sh) ** 2 - np.log(sh) + 0.5 * sh**2 / s**2
    eq3 = 0.5 * (r / sh) ** 2 + 0.5 * np.log(sh)
    t = {k: batch[k] for k in batch}
    np.testing.assert_allclose(losses.mse_paper(**t).numpy(), eq1, rtol=1e-12)
    np.testing.assert_allclose(losses.kld_paper(**t).numpy(), eq2, rtol=1e-12)
    np.testing.assert_allclose(
        losses.nll_paper(t["mu_hat"], t["sigma_hat"], t["mu"]).numpy(), eq3, rtol=1e-12
    )
    np.testing.assert_allclose(losses.mse_mean(t["mu_hat"], t["mu"]).numpy(), r**2)


def _argmin_sigma(loss, r: float, **kwargs) -> float:
    grid = torch.linspace(0.01, 1.0, 20_000, dtype=torch.float64)
    values = loss(torch.full_like(grid, r), grid, torch.zeros_like(grid), **kwargs)
    return float(grid[int(torch.argmin(values))])


def test_optima_differ_as_documented() -> None:
    r = 0.2
    # Gaussian NLL: sigma_hat = |r|; printed eq. 3: sigma_hat^2 = 2 r^2.
    assert _argmin_sigma(losses.gaussian_nll, r) == pytest.approx(r, abs=1e-3)
    assert _argmin_sigma(losses.nll_paper, r) == pytest.approx(np.sqrt(2) * r, abs=1e-3)
    # Exact KL is minimised at the target's sigma when the means agree.
    grid = torch.linspace(0.01, 1.0, 20_000, dtype=torch.float64)
    kl = losses.kl_gaussian(
        torch.zeros_like(grid), grid, torch.zeros_like(grid), torch.full_like(grid, 0.3)
    )
    assert float(grid[int(torch.argmin(kl))]) == pytest.approx(0.3, abs=1e-3)


def test_rater_nll_is_the_mean_nll_of_each_rating() -> None:
    g = torch.Generator().manual_seed(1)
    ratings = (torch.randint(1, 10, (5, 11), generator=g).double() - 5) / 5
    mask = torch.ones(5, 11, dtype=torch.bool)
    mask[0, 10] = False  # songs have 10 or 11 raters
    mask[3, 9:] = False
    mu_hat = torch.rand(5, generator=g, dtype=torch.float64) - 0.5
    sigma_hat = torch.rand(5, generator=g, dtype=torch.float64) * 0.5 + 0.1
    ours = losses.rater_nll(mu_hat, sigma_hat, ratings, mask)
    nll = torch.nn.GaussianNLLLoss(reduction="none")
    for i in range(5):
        y = ratings[i][mask[i]]
        ref = nll(mu_hat[i].expand_as(y), y, (sigma_hat[i] ** 2).expand_as(y)).mean()
        torch.testing.assert_close(ours[i], ref)
    # ... and equal to the sufficient-statistics form used in training.
    counts = mask.sum(-1)
    mean = torch.where(mask, ratings, 0).sum(-1) / counts
    var = torch.where(mask, (ratings - mean[:, None]) ** 2, 0).sum(-1) / counts
    torch.testing.assert_close(losses.rater_nll_moments(mu_hat, sigma_hat, mean, var), ours)


def test_rater_nll_rejects_a_song_without_ratings() -> None:
    with pytest.raises(ValueError, match="no ratings"):
        losses.rater_nll(
            torch.zeros(1), torch.ones(1), torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool)
        )


def test_beta_nll_weights_value_but_detaches_the_weight(batch) -> None:
    mu_hat = batch["mu_hat"].clone().requires_grad_()
    sigma_hat = batch["sigma_hat"].clone().requires_grad_()
    beta = 0.5
    loss = losses.beta_nll(mu_hat, sigma_hat, batch["mu"], beta)
    weight = batch["sigma_hat"] ** (2 * beta)
    nll = losses.gaussian_nll(batch["mu_hat"], batch["sigma_hat"], batch["mu"])
    torch.testing.assert_close(loss, weight * nll)
    loss.sum().backward()
    # Seitzer et al.: d/dmu = sigma^(2 beta) * (mu_hat - mu) / sigma^2; the weight gets no grad.
    r = batch["mu_hat"] - batch["mu"]
    s = batch["sigma_hat"]
    torch.testing.assert_close(mu_hat.grad, weight * r / s**2)
    torch.testing.assert_close(sigma_hat.grad, weight * (1 / s - r**2 / s**3))
    torch.testing.assert_close(losses.beta_nll(batch["mu_hat"], s, batch["mu"], 0.0), nll)
    with pytest.raises(ValueError, match="beta"):
        losses.beta_nll(batch["mu_hat"], s, batch["mu"], 1.5)


@pytest.mark.parametrize(
    "name",
    [
        "mse_paper",
        "kld_paper",
        "nll_paper",
        "gaussian_nll",
        "kl_gaussian",
        "beta_nll",
        "rater_nll_moments",
    ],
)
def test_safe_for_sigma_near_zero_and_one_and_zero_target_sd(name: str) -> None:
    loss = getattr(losses, name)
    sigma_hat = torch.tensor([1e-30, 1e-8, 0.5, 1.0 - 1e-7], requires_grad=True)
    mu_hat = torch.tensor([0.9, -0.9, 0.0, 0.3], requires_grad=True)
    target_mu = torch.tensor([-0.9, 0.9, 0.1, 0.3])
    target_sd = torch.tensor([0.0, 0.0, 0.2, 0.0])
    if name in ("mse_paper", "kld_paper", "kl_gaussian"):
        value = loss(mu_hat, sigma_hat, target_mu, target_sd)
    elif name == "rater_nll_moments":
        value = loss(mu_hat, sigma_hat, target_mu, target_sd**2)
    else:
        value = loss(mu_hat, sigma_hat, target_mu)
    value.sum().backward()
    assert torch.isfinite(value).all()
    assert torch.isfinite(mu_hat.grad).all() and torch.isfinite(sigma_hat.grad).all()


def test_target_sd_floor_only_touches_sd_below_it() -> None:
    mu = torch.zeros(2)
    kl_zero = losses.kl_gaussian(mu, torch.full((2,), 0.3), mu, torch.tensor([0.0, 1e-9]))
    kl_floor = losses.kl_gaussian(
        mu, torch.full((2,), 0.3), mu, torch.full((2,), losses.TARGET_SD_FLOOR)
    )
    torch.testing.assert_close(kl_zero, kl_floor)
    # Real DEAM SDs (>= 0.06 normalised) are above the floor and untouched.
    s = torch.tensor([0.06])
    ref = kl_divergence(Normal(0.0, 0.3), Normal(0.0, s))
    torch.testing.assert_close(losses.kl_gaussian(mu[:1], torch.tensor([0.3]), mu[:1], s), ref)


BACKWARDS = {
    "mse_mean": (losses.mse_mean, losses.mse_mean_backward, ("mu_hat", "mu")),
    "nll_paper": (losses.nll_paper, losses.nll_paper_backward, ("mu_hat", "sigma_hat", "mu")),
    "mse_paper": (
        losses.mse_paper, losses.mse_paper_backward, ("mu_hat", "sigma_hat", "mu", "sigma")
    ),
    "kld_paper": (
        losses.kld_paper, losses.kld_paper_backward, ("mu_hat", "sigma_hat", "mu", "sigma")
    ),
}  # fmt: skip


def _float32_batch(seed: int, n: int = 480) -> dict[str, torch.Tensor]:
    """float32 like training; a quarter of the predicted SDs below SIGMA_FLOOR and some
    target SDs below TARGET_SD_FLOOR, so the clamps' gradients are exercised."""
    g = torch.Generator().manual_seed(seed)
    sigma_hat = torch.rand(n, 2, generator=g) * 0.6 + 0.05
    sigma_hat[: n // 4] = torch.rand(n // 4, 2, generator=g) * 2 * losses.SIGMA_FLOOR
    sigma = torch.rand(n, 2, generator=g) * 0.4 + 0.06
    sigma[: n // 8] *= 0.1
    return {
        "mu_hat": torch.rand(n, 2, generator=g) * 1.8 - 0.9,
        "sigma_hat": sigma_hat,
        "mu": torch.rand(n, 2, generator=g) * 1.8 - 0.9,
        "sigma": sigma,
    }


@pytest.mark.parametrize("name", sorted(BACKWARDS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_written_out_gradients_equal_autograd_bit_for_bit(name: str, seed: int) -> None:
    """Training uses these instead of autograd: any difference in the last bit would move
    every trained weight, so they must be autograd's exactly (upstream gradient 1 / 100,
    not a power of two, like a mean over 50 songs x 2 dimensions)."""
    loss, backward, args = BACKWARDS[name]
    batch = _float32_batch(seed)
    grad = torch.full((480, 2), 1.0) / 100
    inputs = {k: batch[k].clone().requires_grad_(k in ("mu_hat", "sigma_hat")) for k in args}
    value = loss(*(inputs[k] for k in args))
    wrt = [inputs[k] for k in ("mu_hat", "sigma_hat") if k in args]
    reference = torch.autograd.grad(value, wrt, grad)
    mine = backward(grad, *(batch[k] for k in args))
    mine = (mine,) if isinstance(mine, torch.Tensor) else mine
    for got, expected in zip(mine, reference, strict=True):
        assert torch.equal(got, expected), name


@pytest.mark.parametrize("name", sorted(BACKWARDS))
def test_written_out_gradients_match_the_closed_form(name: str, batch) -> None:
    """Independent of autograd: the derivatives by hand (float64, clamps inactive)."""
    _, backward, args = BACKWARDS[name]
    m, s, mu, sd = batch["mu_hat"], batch["sigma_hat"], batch["mu"], batch["sigma"]
    r = m - mu
    closed = {
        "mse_mean": (2 * r,),
        "nll_paper": (r / s**2, -(r**2) / s**3 + 0.5 / s),
        "mse_paper": (2 * r, 4 * s * (s**2 - sd**2)),
        "kld_paper": (r / s**2, -(r**2) / s**3 - 1 / s + s / sd**2),
    }[name]
    got = backward(torch.ones_like(m), *(batch[k] for k in args))
    got = (got,) if isinstance(got, torch.Tensor) else got
    for mine, expected in zip(got, closed, strict=True):
        torch.testing.assert_close(mine, expected)
