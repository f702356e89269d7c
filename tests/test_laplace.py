"""Last-layer Laplace (mer_uq.laplace) against closed forms: the Jacobian against
autograd, the predictive variance against a Bayesian linear regression in function space
(Woodbury), the prior precision against a brute-force search, the linearised tanh against
sampling, and the trial's Laplace rows (no retraining: the mean training's other rows are
unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mer_uq.laplace import fit_last_layer_laplace, jacobians, last_layer_features
from mer_uq.model import FCNConfig, StackedFCN
from mer_uq.synthetic import make_synthetic
from mer_uq.training import TrainConfig
from mer_uq.trial import TrialSpec, run_trial

WIDTH, IN = 8, 5


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    model = StackedFCN(IN, FCNConfig(hidden_width=WIDTH, dropout=0.5), False, (3, 7))
    x_train, x_valid, x_test = (rng.standard_normal((n, IN)) for n in (60, 30, 9))
    y_train = np.clip(0.5 * np.tanh(x_train[:, :2]) + 0.1 * rng.standard_normal((60, 2)), -1, 1)
    y_valid = np.clip(0.5 * np.tanh(x_valid[:, :2]) + 0.1 * rng.standard_normal((30, 2)), -1, 1)
    fit = fit_last_layer_laplace(model, x_train, y_train, x_valid, y_valid)
    return model, fit, x_train, y_train, x_valid, y_valid, x_test


def test_jacobian_equals_autograd(problem):
    model, _, x_train, *_ = problem
    jac, mu = jacobians(model, x_train)
    last = len(model.layer_sizes) - 1
    inputs = torch.as_tensor(x_train, dtype=torch.float32)
    out = model.forward(inputs).mu  # [K, N, D]
    np.testing.assert_allclose(mu, out.detach().numpy(), atol=1e-6)
    for k in range(model.n_members):
        for d in range(2):
            for n in (0, 17):
                w, b = torch.autograd.grad(out[k, n, d], [model.weights[last], model.biases[last]],
                                           retain_graph=True)
                expected = torch.cat([w[k, :, d], b[k, 0, d:d + 1]]).numpy()
                np.testing.assert_allclose(jac[k, d, n], expected, rtol=1e-5, atol=1e-7)


def test_predictive_variance_equals_function_space_bayesian_linear_regression(problem):
    """Weight space: j (J'J / s² + lam I)^-1 j'. Function space (Woodbury):
    (j j' - j J' (J J' + s² lam I)^-1 J j') / lam. Same number, computed another way."""
    model, fit, x_train, _, _, _, x_test = problem
    jac_train, _ = jacobians(model, x_train)
    jac_test, _ = jacobians(model, x_test)
    _, sigma, epistemic = fit.predict(model, x_test)
    for k in range(model.n_members):
        for d in range(2):
            J, j = jac_train[k, d], jac_test[k, d]
            s2, lam = fit.noise_var[k, d], fit.prior_precision[k, d]
            gram = J @ J.T + s2 * lam * np.eye(J.shape[0])
            expected = (np.einsum("np,np->n", j, j)
                        - np.einsum("np,np->n", j @ J.T, np.linalg.solve(gram, J @ j.T).T)) / lam
            np.testing.assert_allclose(epistemic[k, :, d] ** 2, expected, rtol=1e-8)
            np.testing.assert_allclose(sigma[k, :, d] ** 2, s2 + expected, rtol=1e-10)


def test_noise_and_prior_precision_by_brute_force(problem):
    model, fit, x_train, y_train, x_valid, y_valid, _ = problem
    grid = np.logspace(-2, 3, 6)
    fit = fit_last_layer_laplace(model, x_train, y_train, x_valid, y_valid, grid=grid)
    jac, mu = jacobians(model, x_train)
    jac_v, mu_v = jacobians(model, x_valid)
    for k in range(model.n_members):
        for d in range(2):
            s2 = np.mean((mu[k, :, d] - y_train[:, d]) ** 2)
            assert fit.noise_var[k, d] == pytest.approx(s2, rel=1e-12)
            nll = []
            for lam in grid:
                precision = jac[k, d].T @ jac[k, d] / s2 + lam * np.eye(WIDTH + 1)
                cov = np.linalg.inv(precision)
                var = s2 + np.einsum("np,pq,nq->n", jac_v[k, d], cov, jac_v[k, d])
                nll.append(np.mean(0.5 * (np.log(2 * np.pi * var)
                                          + (y_valid[:, d] - mu_v[k, :, d]) ** 2 / var)))
            assert fit.prior_precision[k, d] == grid[int(np.argmin(nll))]


def test_linearised_tanh_matches_sampling_for_a_tight_posterior(problem):
    """The delta method through tanh: var(tanh(phi w)) for w ~ N(w_map, A^-1) approaches
    (1 - mu²)² var(phi w) as the posterior tightens (here lam = 1e4 keeps it tight)."""
    model, _, x_train, y_train, x_valid, y_valid, x_test = problem
    fit = fit_last_layer_laplace(model, x_train, y_train, x_valid, y_valid, grid=np.array([1e4]))
    _, _, epistemic = fit.predict(model, x_test)
    phi = last_layer_features(model, x_test)
    last = len(model.layer_sizes) - 1
    w_map = torch.cat([model.weights[last], model.biases[last]], 1).detach().double().numpy()
    rng = np.random.default_rng(1)
    k, d = 0, 1
    cov = (fit.eigvecs[k, d] / (fit.eigvals[k, d] + 1e4)) @ fit.eigvecs[k, d].T
    draws = rng.multivariate_normal(w_map[k, :, d], cov, size=200_000)
    sampled = np.tanh(phi[k] @ draws.T).var(axis=1)
    np.testing.assert_allclose(sampled, epistemic[k, :, d] ** 2, rtol=0.03)


def test_trial_laplace_rows_leave_the_mean_training_alone():
    dataset, features = make_synthetic(n_songs=200, n_features=12, seed=1)
    train = TrainConfig(epochs=3, steps_per_epoch=8, batch_size=16)
    model = FCNConfig(hidden_width=16)
    with_laplace = run_trial(TrialSpec("mean", (0, 1), model, train, mc_passes=4,
                                       methods=("seeds", "mc_dropout", "laplace")),
                             dataset, features)
    without = run_trial(TrialSpec("mean", (0, 1), model, train, mc_passes=4,
                                  methods=("seeds", "mc_dropout")), dataset, features)
    pred = with_laplace.predictions
    paper = pred[pred["method"] != "laplace"][without.predictions.columns].reset_index(drop=True)
    assert paper.equals(without.predictions)
    lap = pred[pred["method"] == "laplace"]
    seeds = pred[pred["method"] == "seeds"]
    np.testing.assert_allclose(lap["valence_mu"].to_numpy(), seeds["valence_mu"].to_numpy(),
                               atol=1e-6)
    total = lap["valence_sigma"] ** 2
    parts = lap["valence_sigma_aleatoric"] ** 2 + lap["valence_sigma_epistemic"] ** 2
    np.testing.assert_allclose(total, parts, rtol=1e-12)
    assert (lap["valence_sigma_epistemic"] > 0).all()
    assert with_laplace.metrics["time/laplace_s"] > 0
    assert "time/laplace_s" not in without.metrics
