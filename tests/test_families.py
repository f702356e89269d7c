"""The distribution families (mer_uq.families) and their torch heads (mer_uq.heads),
against independent references: torch.distributions, scipy, scoringrules, numerical
integration, crepes, and the equations of Amini et al. (2020) written out here."""

from __future__ import annotations

import math

import numpy as np
import properscoring
import pytest
import scoringrules as sr
import torch
from scipy import integrate, stats
from torch.distributions import Categorical, MixtureSameFamily, Normal, StudentT

from mer_uq import families, heads
from mer_uq.conformal_quantile import conformalise, cqr_margin, level_pairs
from mer_uq.families import QUANTILE_LEVELS, quantile_param

RNG = np.random.default_rng(7)
N = 40
Y = RNG.normal(0.0, 0.5, N)


def _t() -> families.StudentT:
    return families.StudentT({"df": RNG.uniform(2.2, 30, N), "loc": RNG.normal(0, 0.3, N),
                              "scale": RNG.uniform(0.05, 0.6, N)})


def _mix() -> families.GaussianMixture:
    return families.GaussianMixture({
        "w1": RNG.uniform(0.05, 0.95, N), "loc1": RNG.normal(0, 0.4, N),
        "scale1": RNG.uniform(0.05, 0.5, N), "loc2": RNG.normal(0, 0.4, N),
        "scale2": RNG.uniform(0.05, 0.5, N)})


def _nig() -> families.NormalInverseGamma:
    return families.NormalInverseGamma({
        "gamma": RNG.normal(0, 0.3, N), "nu": RNG.uniform(0.1, 5, N),
        "alpha": RNG.uniform(1.1, 6, N), "beta": RNG.uniform(0.01, 0.5, N)})


def _quant() -> families.QuantileSpline:
    loc, scale = RNG.normal(0, 0.3, N), RNG.uniform(0.05, 0.5, N)
    return families.QuantileSpline({quantile_param(t): loc + scale * stats.norm.ppf(t)
                                    for t in QUANTILE_LEVELS})


def _torch(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def test_student_t_against_torch_distributions() -> None:
    d = _t()
    ref = StudentT(_torch(d.df), _torch(d.loc), _torch(d.scale))
    np.testing.assert_allclose(d.logpdf(Y), ref.log_prob(_torch(Y)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(d.sd(), ref.stddev.numpy(), rtol=1e-10)
    np.testing.assert_allclose(d.cdf(d.ppf(0.9)), 0.9, rtol=1e-9)


def test_mixture_against_torch_mixture_same_family() -> None:
    d = _mix()
    weights = torch.stack([_torch(d.w1), _torch(1 - d.w1)], -1)
    comps = Normal(torch.stack([_torch(d.loc1), _torch(d.loc2)], -1),
                   torch.stack([_torch(d.scale1), _torch(d.scale2)], -1))
    ref = MixtureSameFamily(Categorical(probs=weights), comps)
    np.testing.assert_allclose(d.logpdf(Y), ref.log_prob(_torch(Y)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(d.mean(), ref.mean.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(d.sd(), ref.stddev.numpy(), rtol=1e-10)
    np.testing.assert_allclose(d.cdf(d.ppf(np.full(N, 0.3))), 0.3, atol=1e-10)


def test_gaussian_against_torch_normal_and_metrics() -> None:
    from mer_uq import metrics

    loc, scale = RNG.normal(0, 0.3, N), RNG.uniform(0.05, 0.6, N)
    d = families.Gaussian({"loc": loc, "scale": scale})
    ref = Normal(_torch(loc), _torch(scale))
    np.testing.assert_allclose(d.logpdf(Y), ref.log_prob(_torch(Y)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(d.cdf(Y), ref.cdf(_torch(Y)).numpy(), rtol=1e-9, atol=1e-15)
    assert np.mean(d.crps(Y)) == pytest.approx(metrics.crps_gaussian(Y, loc, scale), rel=1e-12)
    np.testing.assert_allclose(d.crps(Y), properscoring.crps_gaussian(Y, loc, scale), rtol=1e-9)


def test_nig_predictive_is_the_student_t_of_amini_et_al() -> None:
    d = _nig()
    # Amini et al. (2020), eq. 7: St(y; gamma, beta (1 + nu) / (nu alpha), 2 alpha).
    ref = stats.t(2 * d.alpha, d.gamma, np.sqrt(d.beta * (1 + d.nu) / (d.nu * d.alpha)))
    np.testing.assert_allclose(d.logpdf(Y), ref.logpdf(Y), rtol=1e-10)
    aleatoric, epistemic = d.variance_parts()
    np.testing.assert_allclose(aleatoric, d.beta / (d.alpha - 1))
    np.testing.assert_allclose(epistemic, d.beta / (d.nu * (d.alpha - 1)))
    np.testing.assert_allclose(d.sd() ** 2, ref.var(), rtol=1e-10)


@pytest.mark.parametrize("make", [_t, _mix, _nig])
def test_crps_against_scoringrules(make) -> None:
    d = make()
    if isinstance(d, families.NormalInverseGamma):
        d = d.predictive()
    if isinstance(d, families.StudentT):
        ref = sr.crps_t(Y, d.df, d.loc, d.scale)
    else:
        ref = sr.crps_mixnorm(Y, np.stack([d.loc1, d.loc2], -1),
                              np.stack([d.scale1, d.scale2], -1),
                              np.stack([d.w1, 1 - d.w1], -1))
    np.testing.assert_allclose(d.crps(Y), ref, rtol=1e-7)


def test_quantile_family_against_numerical_integration() -> None:
    d = _quant()
    for i in range(0, N, 8):
        one = d.take(np.array([i]))
        knots = one.knots()[0]

        def whole(f, knots: np.ndarray = knots) -> float:  # a kink at every knot
            return (integrate.quad(f, -np.inf, knots[0])[0]
                    + integrate.quad(f, knots[0], knots[-1], points=knots[1:-1], limit=200)[0]
                    + integrate.quad(f, knots[-1], np.inf)[0])

        dens = lambda x, one=one: float(np.exp(one.logpdf(np.array([x])))[0])  # noqa: E731
        assert whole(dens) == pytest.approx(1, abs=1e-8)
        mean = whole(lambda x, f=dens: x * f(x))
        second = whole(lambda x, f=dens: x * x * f(x))
        assert one.mean()[0] == pytest.approx(mean, abs=1e-6)
        assert one.sd()[0] == pytest.approx(math.sqrt(second - mean**2), abs=1e-6)
        y = Y[i]

        def sq(x: float, y: float = y, one=one) -> float:
            return float((one.cdf(np.array([x]))[0] - (x >= y)) ** 2)

        ref = (integrate.quad(sq, -np.inf, y, limit=200)[0]
               + integrate.quad(sq, y, np.inf, limit=200)[0])
        assert one.crps(np.array([y]))[0] == pytest.approx(ref, rel=1e-6)
        for t in QUANTILE_LEVELS:  # the quantiles are the knots, exactly
            assert one.ppf(t)[0] == pytest.approx(one.params[quantile_param(t)][0])
        assert one.cdf(one.ppf(0.01))[0] == pytest.approx(0.01)


def test_columns_round_trip() -> None:
    d = _mix()
    columns = families.to_columns(d, "valence")
    back = families.from_columns("gaussian_mixture", columns, "valence")
    np.testing.assert_array_equal(back.logpdf(Y), d.logpdf(Y))
    with pytest.raises(ValueError, match="valence__scale2"):
        families.from_columns("gaussian_mixture",
                              {k: v for k, v in columns.items() if "scale2" not in k}, "valence")


# ---------------------------------------------------------------- torch heads and losses


def _raw(n_params: int) -> torch.Tensor:
    return torch.as_tensor(RNG.normal(0, 1.5, (3, 5, n_params * 2)), dtype=torch.float64)


def test_head_losses_against_torch_distributions() -> None:
    y = torch.as_tensor(RNG.normal(0, 0.5, (3, 5, 2)), dtype=torch.float64)
    p = heads.HEADS["student_t"](_raw(3), 2)
    assert bool((p["df"] > 2).all())
    ref = -StudentT(p["df"], p["loc"], p["scale"]).log_prob(y)
    torch.testing.assert_close(heads.student_t_nll(p, y), ref)
    p = heads.HEADS["gaussian_mixture"](_raw(5), 2)
    w = torch.stack([p["w1"], 1 - p["w1"]], -1)
    mix = MixtureSameFamily(Categorical(probs=w),
                            Normal(torch.stack([p["loc1"], p["loc2"]], -1),
                                   torch.stack([p["scale1"], p["scale2"]], -1)))
    torch.testing.assert_close(heads.mixture_nll(p, y), -mix.log_prob(y))


def test_evidential_loss_is_the_papers_equations() -> None:
    y = torch.as_tensor(RNG.normal(0, 0.5, (3, 5, 2)), dtype=torch.float64)
    p = heads.HEADS["nig"](_raw(4), 2)
    g, v, a, b = (p[k] for k in ("gamma", "nu", "alpha", "beta"))
    # Amini et al. (2020) eq. 8, with Omega = 2 beta (1 + nu) ...
    omega = 2 * b * (1 + v)
    nll = (0.5 * torch.log(math.pi / v) - a * torch.log(omega)
           + (a + 0.5) * torch.log((y - g) ** 2 * v + omega)
           + torch.lgamma(a) - torch.lgamma(a + 0.5))
    torch.testing.assert_close(heads.nig_nll(p, y), nll)
    # ... which is the Student-t predictive's NLL (eq. 7) ...
    t = StudentT(2 * a, g, torch.sqrt(b * (1 + v) / (v * a)))
    torch.testing.assert_close(heads.nig_nll(p, y), -t.log_prob(y))
    # ... plus lambda |y - gamma| (2 nu + alpha), eq. 9.
    torch.testing.assert_close(heads.evidential_loss(p, y, lam=0.3),
                               nll + 0.3 * torch.abs(y - g) * (2 * v + a))


def test_quantile_head_is_monotone_and_pinball_is_the_definition() -> None:
    p = heads.HEADS["quantile"](_raw(len(QUANTILE_LEVELS)), 2)
    knots = torch.stack([p[quantile_param(t)] for t in QUANTILE_LEVELS], -1)
    assert bool((knots.diff(dim=-1) > 0).all())
    y = torch.as_tensor(RNG.normal(0, 0.5, (3, 5, 2)), dtype=torch.float64)
    ref = torch.zeros_like(y)
    for t in QUANTILE_LEVELS:
        q = p[quantile_param(t)]
        ref += torch.where(y >= q, t * (y - q), (1 - t) * (q - y))
    torch.testing.assert_close(heads.pinball_loss(p, y), ref / len(QUANTILE_LEVELS))


def test_per_rating_loss_averages_each_songs_real_ratings() -> None:
    p = heads.HEADS["student_t"](_raw(3), 2)
    ratings = torch.as_tensor(RNG.normal(0, 0.5, (3, 5, 4, 2)), dtype=torch.float64)
    mask = torch.as_tensor(RNG.random((3, 5, 4)) < 0.7)
    mask[..., 0] = True
    got = heads.per_rating_loss("student_t", p, ratings, mask)
    for k in range(3):
        for s in range(5):
            rows = ratings[k, s][mask[k, s]]
            one = heads.HeadOutput("student_t", {n: v[k, s] for n, v in p.params.items()})
            torch.testing.assert_close(got[k, s], heads.student_t_nll(one, rows).mean(0))


def test_heads_numpy_and_torch_families_agree() -> None:
    """The numpy family built from a head's parameters has the head's loss as NLL."""
    y = torch.as_tensor(RNG.normal(0, 0.5, (3, 5, 2)), dtype=torch.float64)
    for head, name in (("student_t", "student_t"), ("gaussian_mixture", "gaussian_mixture")):
        p = heads.HEADS[head](_raw(heads.HEADS[head].n_params), 2)
        d = families.family(name)({k: v.numpy() for k, v in p.params.items()})
        np.testing.assert_allclose(-d.logpdf(y.numpy()), heads.LOSSES[head](p, y).numpy(),
                                   rtol=1e-10)


# ---------------------------------------------------------------- CQR


def test_cqr_margin_matches_crepes_on_the_same_scores() -> None:
    crepes = pytest.importorskip("crepes")
    n = 137
    y = RNG.normal(0, 1, n)
    lo = np.full(n, 0.5)  # every target outside: every conformity score is positive,
    hi = np.full(n, 0.5)  # |y - 0.5|, the absolute residual crepes calibrates on
    for level in (0.5, 0.8, 0.95):
        regressor = crepes.ConformalRegressor().fit(y - 0.5)
        low, high = regressor.predict_int(np.array([0.0]), confidence=level)[0]
        assert cqr_margin(lo, hi, y, level) == pytest.approx(high)
        assert cqr_margin(lo, hi, y, level) == pytest.approx(-low)


def test_cqr_reaches_nominal_coverage_on_exchangeable_data() -> None:
    """Quantiles far too narrow (half the true spread) are widened to cover."""
    n_cal, n_test = 4000, 4000
    loc = RNG.normal(0, 1, n_cal + n_test)
    y = loc + RNG.normal(0, 1, n_cal + n_test)
    knots = loc[:, None] + 0.5 * stats.norm.ppf(QUANTILE_LEVELS)[None, :]
    cal = np.zeros(n_cal + n_test, dtype=bool)
    cal[:n_cal] = True
    adjusted = conformalise(knots, cal, np.arange(n_cal), y[:n_cal])
    for lo, hi, level in level_pairs():
        inside = (y[~cal] >= adjusted[~cal, lo]) & (y[~cal] <= adjusted[~cal, hi])
        assert abs(inside.mean() - level) < 0.03
        before = (y[~cal] >= knots[~cal, lo]) & (y[~cal] <= knots[~cal, hi])
        assert before.mean() < level - 0.1
    assert np.all(np.diff(adjusted, axis=1) > 0)


# ---------------------------------------------------------------- a trial of a family


@pytest.fixture(scope="module")
def synthetic():
    from mer_uq.synthetic import make_synthetic

    return make_synthetic(n_songs=120, n_features=6, n_raters=7, seed=3)


def test_rating_matrix_holds_each_songs_ratings(synthetic) -> None:
    from mer_uq.methods import rating_columns
    from mer_uq.trial import rating_matrix, training_targets

    dataset, _ = synthetic
    ids = dataset.song_ids("valid")[:5]
    values, mask = rating_matrix(dataset.ratings, ids)
    for i, song in enumerate(ids):
        rows = dataset.ratings[dataset.ratings["song_id"] == song]
        np.testing.assert_array_equal(values[i, mask[i], 1], rows["arousal"].to_numpy())
    wide = training_targets(dataset, ids, individual_ratings=True)
    ratings, got_mask = rating_columns(torch.as_tensor(wide))
    np.testing.assert_array_equal(ratings.numpy(), values)
    np.testing.assert_array_equal(got_mask.numpy(), mask)


@pytest.mark.parametrize("training", ["quantile", "evidential"])
def test_family_trial_rows_rebuild_their_distribution(synthetic, training) -> None:
    from mer_uq.scores import row_distribution
    from mer_uq.trial import TrainConfig, TrialSpec, rating_matrix, run_trial

    dataset, features = synthetic
    spec = TrialSpec(training, seeds=(0, 1),
                     train=TrainConfig(epochs=2, steps_per_epoch=4, batch_size=16))
    result = run_trial(spec, dataset, features)
    rows = result.predictions
    family = {"quantile": "quantile", "evidential": "nig"}[training]
    assert set(rows[families.FAMILY_COLUMN]) == {family}
    for seed in (0, 1):
        mine = rows[(rows["seed"] == seed)]
        for dim in ("valence", "arousal"):
            dist = row_distribution(mine, dim)
            np.testing.assert_allclose(dist.mean(), mine[f"{dim}_mu"])
            np.testing.assert_allclose(dist.sd(), mine[f"{dim}_sigma"])
        if training == "quantile":  # CQR: each interval covers >= L of the valid ratings
            valid = mine[mine["split"] == "valid"]
            values, mask = rating_matrix(dataset.ratings, valid["song_id"].to_numpy())
            for dim_index, dim in enumerate(("valence", "arousal")):
                dist = row_distribution(valid, dim)
                y = values[:, :, dim_index]
                for level in (0.5, 0.8, 0.95):
                    lo, hi = dist.interval(level)
                    inside = (y >= lo[:, None] - 1e-12) & (y <= hi[:, None] + 1e-12)
                    assert inside[mask].mean() >= level
    assert np.isfinite(result.metrics[f"test/{training}/valence/rating_crps"])
