"""Last-layer Laplace approximation of a trained mean-only FCN (no extra training).

What it estimates: MODEL (epistemic) uncertainty of the mean head, the posterior spread of
the output layer's weights given the training songs, plus a homoscedastic noise variance
(the residual spread of the song means around the model): predictive SD
sqrt(noise² + epistemic variance). Daxberger et al. (2021, "Laplace Redux", NeurIPS) show
the last layer alone carries most of a network's Laplace benefit at a tiny cost; the
predictive is the linearised (GLM) one of Immer, Korzepa & Bauer (2021, AISTATS).

For each member and dimension d, with phi(x) the last hidden layer's activations plus a
1 for the bias (`StackedFCN.hidden`), the mean is mu = tanh(f), f = phi w_d:

* the noise variance s_d² is the mean squared residual of mu on the training songs'
  means (the Gaussian likelihood's maximum-likelihood variance at the trained weights);
* the tanh is linearised at the trained weights (the delta method): the Jacobian of mu
  with respect to w_d is j(x) = (1 - mu²) phi(x). The Hessian of the Gaussian negative
  log likelihood with respect to w_d is then G = sum_n j_n j_nᵀ / s_d², exact for the
  linearised model; the dropped term (mu - y) tanh''(f) phi phiᵀ / s² can make the
  precision indefinite and vanishes at a perfect fit (the generalised Gauss-Newton);
* with an isotropic Gaussian prior of precision lambda, the posterior precision is
  A = G + lambda I, and the predictive variance of mu at x is j(x)ᵀ A⁻¹ j(x): a Bayesian
  linear regression on the features j, in closed form;
* lambda is chosen on the VALIDATION songs, from a log grid, as the one with the lowest
  Gaussian NLL of the validation song means under N(mu, s_d² + j A⁻¹ j) (the grid search
  laplace-torch offers as an alternative to the marginal likelihood; it targets the
  predictive the report scores).

One eigendecomposition of G per member and dimension serves every lambda of the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mer_uq.model import N_DIMS, StackedFCN

# log10 prior precisions searched on the validation split.
PRIOR_PRECISION_GRID: np.ndarray = np.logspace(-4, 6, 41)
_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class LastLayerLaplace:
    """A fitted last-layer Laplace for every member and dimension.

    eigvals/eigvecs: the GGN G = U diag(e) Uᵀ per member and dimension ([K, D, P] and
    [K, D, P, P], P = width + 1); noise_var and prior_precision: [K, D]."""

    eigvals: np.ndarray
    eigvecs: np.ndarray
    noise_var: np.ndarray
    prior_precision: np.ndarray

    def predict(self, model: StackedFCN, x: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
        """mu, total SD and epistemic SD [K, N, D] for inputs x [N, in]."""
        jac, mu = jacobians(model, x)
        var = _predictive_var(jac, self.eigvals, self.eigvecs, self.prior_precision[..., None])
        return mu, np.sqrt(self.noise_var[:, None, :] + var), np.sqrt(var)


def last_layer_features(model: StackedFCN, x: np.ndarray) -> np.ndarray:
    """phi(x) [K, N, width + 1]: the last hidden layer (dropout off) and a 1 for the bias."""
    with torch.no_grad():
        inputs = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=model.device)
        h = model.hidden(inputs).double().cpu().numpy()
    return np.concatenate([h, np.ones((*h.shape[:2], 1))], axis=-1)


def jacobians(model: StackedFCN, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """j = d mu / d w_d = (1 - mu²) phi [K, D, N, P], and mu [K, N, D] (the trained
    model's own output, in float64 from its float32 features)."""
    if model.two_outputs:
        raise ValueError("last-layer Laplace is defined here for the mean-only model")
    phi = last_layer_features(model, x)
    last = len(model.layer_sizes) - 1
    w = torch.cat([model.weights[last], model.biases[last]], dim=1).detach().double()
    f = phi @ w.cpu().numpy()
    mu = np.tanh(f)
    jac = (1.0 - mu * mu).transpose(0, 2, 1)[..., None] * phi[:, None, :, :]
    return jac, mu


def _predictive_var(jac: np.ndarray, eigvals: np.ndarray, eigvecs: np.ndarray,
                    prior_precision: np.ndarray) -> np.ndarray:
    """j (G + lambda I)⁻¹ jᵀ per member, dimension and song [K, N, D]; prior_precision
    broadcasts against [K, D, 1] (one lambda) or [K, D, L] (a grid: returns [L, K, N, D])."""
    proj = np.square(jac @ eigvecs)  # (Uᵀ j)², [K, D, N, P]
    if prior_precision.shape[-1] == 1:
        var = proj @ (1.0 / (eigvals + prior_precision))[..., None]  # [K, D, N, 1]
        return var[..., 0].transpose(0, 2, 1)
    inv = 1.0 / (eigvals[:, :, None, :] + prior_precision[..., None])  # [K, D, L, P]
    return (proj @ inv.transpose(0, 1, 3, 2)).transpose(3, 0, 2, 1)  # [L, K, N, D]


def fit_last_layer_laplace(model: StackedFCN, x_train: np.ndarray, y_train: np.ndarray,
                           x_valid: np.ndarray, y_valid: np.ndarray,
                           grid: np.ndarray = PRIOR_PRECISION_GRID) -> LastLayerLaplace:
    """Fit on the training songs (noise, Hessian) and choose the prior precision on the
    validation songs. y_*: the song means [N, D] the mean head was trained on."""
    jac, mu = jacobians(model, x_train)
    resid = mu - np.asarray(y_train, dtype=np.float64)[None, :, :N_DIMS]
    noise_var = np.mean(resid * resid, axis=1)  # [K, D]
    ggn = (jac.transpose(0, 1, 3, 2) @ jac) / noise_var[:, :, None, None]
    eigvals, eigvecs = np.linalg.eigh(ggn)
    eigvals = np.maximum(eigvals, 0.0)  # G is PSD; eigh may return -1e-17
    jac_v, mu_v = jacobians(model, x_valid)
    grid = np.asarray(grid, dtype=np.float64)
    lam = np.broadcast_to(grid, (*noise_var.shape, grid.size))
    var = noise_var[None, :, None, :] + _predictive_var(jac_v, eigvals, eigvecs, lam)
    err = (np.asarray(y_valid, dtype=np.float64)[None, None, :, :N_DIMS] - mu_v[None]) ** 2
    nll = 0.5 * (_LOG_2PI + np.log(var) + err / var).mean(axis=2)  # [L, K, D]
    best = grid[np.argmin(nll, axis=0)]
    return LastLayerLaplace(eigvals, eigvecs, noise_var, best)
