"""The registry is Table 1, and each training key is wired to the loss it names."""

from __future__ import annotations

import pytest
import torch

from mer_uq import losses
from mer_uq.distribution import DiagGaussian
from mer_uq.methods import (
    METHODS,
    TRAININGS,
    Targets,
    Uncertainty,
    UnknownMethodError,
    method_spec,
    methods_of_training,
    training_groups,
)

PAPER = ("seeds", "mc_dropout", "nll", "mse", "kld")


def test_table_1_rows() -> None:
    assert tuple(m for m in METHODS if METHODS[m].in_paper) == PAPER
    seeds, mc, nll, mse, kld = (METHODS[m] for m in PAPER)
    assert seeds.training == mc.training == "mean"
    assert seeds.uncertainty is Uncertainty.SEED_ENSEMBLE
    assert mc.uncertainty is Uncertainty.MC_DROPOUT
    assert nll.trains_on is Targets.MEAN
    assert mse.trains_on is kld.trains_on is Targets.MEAN_AND_SD
    assert {nll.uncertainty, mse.uncertainty, kld.uncertainty} == {Uncertainty.SIGMA_HAT}
    assert not TRAININGS["mean"].two_outputs
    assert all(TRAININGS[m.training].two_outputs for m in (nll, mse, kld))
    assert METHODS["rater_nll"].trains_on is Targets.RATINGS


def test_every_method_reads_a_known_training() -> None:
    for spec in METHODS.values():
        assert spec.training in TRAININGS
    assert METHODS["seeds"].outputs == "mu_hat"
    assert METHODS["kld"].outputs == "mu_hat, sigma_hat"
    assert METHODS["kld"].loss == "kld_paper (eq. 2)"


def test_training_groups_share_the_mean_model() -> None:
    groups = training_groups(["kld", "mc_dropout", "seeds", "nll", "kld"])
    assert groups == {"mean": ["mc_dropout", "seeds"], "nll": ["nll"], "kld": ["kld"]}
    assert methods_of_training("mean") == ("seeds", "mc_dropout", "laplace")
    assert methods_of_training("beta_nll") == ("beta_nll",)


def test_unknown_names_list_the_known() -> None:
    with pytest.raises(UnknownMethodError, match="unknown method 'nl'; known: seeds"):
        method_spec("nl")
    with pytest.raises(UnknownMethodError, match="unknown method"):
        training_groups(["nll", "oops"])
    with pytest.raises(UnknownMethodError, match="unknown training key"):
        methods_of_training("seeds")


@pytest.mark.parametrize(
    ("key", "reference"),
    [
        ("mean", lambda mh, sh, m, s: losses.mse_mean(mh, m)),
        ("nll", lambda mh, sh, m, s: losses.nll_paper(mh, sh, m)),
        ("mse", losses.mse_paper),
        ("kld", losses.kld_paper),
        ("nll_exact", lambda mh, sh, m, s: losses.gaussian_nll(mh, sh, m)),
        ("kld_exact", losses.kl_gaussian),
        ("beta_nll", lambda mh, sh, m, s: losses.beta_nll(mh, sh, m, 0.5)),
        ("rater_nll", lambda mh, sh, m, s: losses.rater_nll_moments(mh, sh, m, s**2)),
    ],
)
def test_objectives_are_wired_to_their_losses(key, reference) -> None:
    g = torch.Generator().manual_seed(0)
    mu_hat = torch.rand(3, 8, 2, generator=g) - 0.5
    log_sigma = -torch.rand(3, 8, 2, generator=g) - 0.5
    target = torch.cat(
        [torch.rand(3, 8, 2, generator=g) - 0.5, torch.rand(3, 8, 2, generator=g) * 0.3 + 0.05],
        dim=-1,
    )
    two = TRAININGS[key].two_outputs
    pred = DiagGaussian(mu_hat, log_sigma if two else None)
    got = TRAININGS[key].objective(pred, target)
    expected = reference(mu_hat, log_sigma.exp(), target[..., :2], target[..., 2:])
    torch.testing.assert_close(got, expected)
    assert got.shape == (3, 8, 2)  # valence and arousal both scored
