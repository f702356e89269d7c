"""An example mer-uq method from outside the package: the two-output Gaussian head
trained by the closed-form CRPS of the song mean (minimum-CRPS estimation, Gneiting et
al., 2005) instead of its NLL.

mer-uq finds it through the `mer_uq.methods` entry point (pyproject.toml). The module
imports no torch at import time: the analysis imports the registry and must stay
torch-free, so torch is imported inside the objective.
"""

from __future__ import annotations

import math

from mer_uq.methods import MethodSpec, Targets, TrainingSpec, Uncertainty


def crps_gaussian_objective(pred, target):
    """CRPS of N(mu_hat, sigma_hat^2) at each song mean, elementwise [..., D]."""
    import torch

    mean = target[..., : pred.mu.shape[-1]]
    sigma = torch.clamp(pred.sigma, min=1e-3)
    z = (mean - pred.mu) / sigma
    normal = torch.distributions.Normal(0.0, 1.0)
    pdf = torch.exp(normal.log_prob(z))
    return sigma * (z * (2.0 * normal.cdf(z) - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))


METHODS = [
    TrainingSpec("crps_gaussian", True, Targets.MEAN, "crps_gaussian (plugin)",
                 crps_gaussian_objective),
    MethodSpec("crps_gaussian", "crps_gaussian", Uncertainty.SIGMA_HAT, False,
               "CRPS (example plugin)", "Gaussian head trained by the CRPS of the song mean"),
]
