"""The stacked FCN: shapes and ranges, the ELU+dropout op, per-member init, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mer_uq.methods import TRAININGS, training_spec
from mer_uq.model import DropoutCode, FCNConfig, StackedFCN, seed_streams


def test_outputs_have_both_dimensions_and_paper_ranges() -> None:
    model = StackedFCN(7, FCNConfig(hidden_width=16), two_outputs=True, seeds=(0, 1, 2))
    x = torch.randn(3, 5, 7) * 50  # large inputs push both heads to their limits
    out = model.forward(x)
    assert out.mu.shape == (3, 5, 2) and out.log_sigma.shape == (3, 5, 2)
    assert (out.mu.abs() <= 1).all()
    sigma = out.sigma
    assert ((sigma > 0) & (sigma <= 1)).all()
    mean_only = StackedFCN(7, FCNConfig(hidden_width=16), two_outputs=False, seeds=(0,))
    assert mean_only.forward(torch.randn(4, 7)).log_sigma is None


def test_shared_inputs_equal_per_member_inputs() -> None:
    model = StackedFCN(6, FCNConfig(hidden_width=8, depth=3), True, seeds=(3, 4))
    x = torch.randn(5, 6)
    shared = model.forward(x)
    stacked = model.forward(x.expand(2, 5, 6).contiguous())
    torch.testing.assert_close(shared.mu, stacked.mu)
    torch.testing.assert_close(shared.log_sigma, stacked.log_sigma)


def test_forward_matches_a_plain_torch_fcn() -> None:
    """Member k is exactly nn.Linear -> ELU -> ... -> tanh / -softplus with its weights."""
    model = StackedFCN(6, FCNConfig(hidden_width=8), True, seeds=(0, 1))
    x = torch.randn(4, 6)
    p = model.params.tensors
    for k in range(2):
        h = F.elu(x @ p["weight0"][k] + p["bias0"][k])
        h = F.elu(h @ p["weight1"][k] + p["bias1"][k])
        h = h @ p["weight2"][k] + p["bias2"][k]
        out = model.forward(x, members=slice(k, k + 1))
        torch.testing.assert_close(out.mu[0], torch.tanh(h[:, :2]))
        torch.testing.assert_close(out.log_sigma[0], -F.softplus(h[:, 2:]))


def test_each_member_is_initialised_from_its_own_seed() -> None:
    stacked = StackedFCN(9, FCNConfig(hidden_width=12), True, seeds=(5, 0, 7))
    for k, seed in enumerate((5, 0, 7)):
        alone = StackedFCN(9, FCNConfig(hidden_width=12), True, seeds=(seed,))
        for name, tensor in stacked.params.tensors.items():
            torch.testing.assert_close(tensor[k], alone.params.tensors[name][0], rtol=0, atol=0)
    other = StackedFCN(9, FCNConfig(hidden_width=12), True, seeds=(1,))
    assert not torch.equal(other.params.tensors["weight0"][0], stacked.params.tensors["weight0"][1])


def test_init_is_nn_linear_default_range() -> None:
    model = StackedFCN(100, FCNConfig(hidden_width=64), True, seeds=(0,))
    w = model.params.tensors["weight0"].detach()
    bound = 1 / np.sqrt(100)
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert abs(float(w.mean())) < 0.01


def test_flat_buffer_backs_every_tensor() -> None:
    model = StackedFCN(5, FCNConfig(hidden_width=4), True, seeds=(0, 1))
    with torch.no_grad():
        model.params.data.zero_()
    assert all(float(t.detach().abs().sum()) == 0 for t in model.params.values)
    counts = torch.bincount(model.params.member_of)
    assert counts.tolist() == [model.params.data.numel() // 2] * 2


def test_dropout_code_rate_and_scale() -> None:
    code = DropoutCode(0.5)
    rng = np.random.default_rng(0)
    masks = code.masks(code.random_bytes(rng, (200, 1000)))
    assert set(np.unique(masks).tolist()) == {0.0, 2.0}
    assert masks.mean() == pytest.approx(1.0, abs=0.01)  # expectation preserved
    odd = DropoutCode(0.3)
    assert odd.p == pytest.approx(77 / 256)
    assert odd.masks(odd.random_bytes(rng, (1000, 1000))).mean() == pytest.approx(1.0, abs=0.005)
    assert not DropoutCode(0.0).active


def test_seed_streams_are_reproducible_and_distinct() -> None:
    a, b, c = seed_streams(3), seed_streams(3), seed_streams(4)
    assert a.batches.integers(1 << 30) == b.batches.integers(1 << 30)
    assert seed_streams(3).dropout.integers(1 << 30) != c.dropout.integers(1 << 30)
    with pytest.raises(ValueError, match="seeds"):
        seed_streams(-1)


def test_feature_dimension_mismatch_is_a_clear_error() -> None:
    model = StackedFCN(130, FCNConfig(), True, seeds=(0,))
    with pytest.raises(ValueError, match="feature dimension 1024 does not match the model's 130"):
        model.forward(torch.randn(3, 1024))


@pytest.mark.parametrize(
    "kwargs",
    [{"hidden_width": 0}, {"depth": 0}, {"dropout": 1.0}, {"dropout": 0.999}, {"dropout": -0.1}],
)
def test_bad_config_is_rejected(kwargs) -> None:
    with pytest.raises(ValueError, match="FCNConfig"):
        FCNConfig(**kwargs)


def test_seeds_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        StackedFCN(3, FCNConfig(), True, seeds=(1, 1))


@pytest.mark.parametrize("training", sorted(TRAININGS))
@pytest.mark.parametrize("with_masks", [False, True])
def test_written_out_backward_equals_autograd_bit_for_bit(training: str, with_masks: bool) -> None:
    """loss_and_grads replaces autograd over the layers in the training loop; it must
    give exactly autograd's losses and gradients (same kernels), or results would move."""
    spec = training_spec(training)
    model = StackedFCN(9, FCNConfig(hidden_width=16, depth=3), spec.two_outputs, (0, 1, 2),
                       head=spec.head)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 8, 9, generator=gen)
    target = torch.rand(3, 8, 2 * 2, generator=gen) * 0.5 + 0.1
    if spec.individual_ratings:  # then 4 ratings per dimension and their mask
        ratings = torch.rand(3, 8, 4 * 2, generator=gen) - 0.5
        target = torch.cat([target, ratings, torch.ones(3, 8, 4)], dim=-1)
    masks = None
    if with_masks:
        masks = [(torch.rand(3, 8, 16, generator=gen) > 0.5).float() * 2 for _ in range(3)]

    def member_loss(pred):
        return spec.objective(pred, target).mean(dim=(1, 2))

    upstream = torch.ones(3, 1, 1).expand(3, 8, 2) / 16
    backward = None
    if spec.objective_backward is not None:

        def backward(pred):
            return spec.objective_backward(pred, target, upstream)

    loss, grads = model.loss_and_grads(x, masks, member_loss, backward)
    grads = [g.clone() for g in grads]  # they live in a buffer the next step overwrites
    reference_loss = member_loss(model.forward(x, masks))
    reference = torch.autograd.grad(reference_loss.sum(), model.params.values)
    assert torch.equal(loss, reference_loss.detach())
    assert len(grads) == len(reference)
    for name, mine, theirs in zip(model.params.names, grads, reference, strict=True):
        assert torch.equal(mine, theirs), name
