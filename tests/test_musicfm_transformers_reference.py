"""Our plain-torch conformer against an independent implementation: Hugging Face
transformers' ``Wav2Vec2ConformerEncoder`` with rotary positions, the class that upstream
MusicFM builds its encoder from.

A tiny encoder is built from a ``Wav2Vec2ConformerConfig``, every parameter and BatchNorm
running statistic is randomised with a fixed seed, and the SAME tensors are written into a
released-layout checkpoint (``model.conformer.<transformers key>``) that the project's
strict loader must accept as is. Both encoders then run in eval mode on one random input and
every hidden state must agree.

Hidden states are taken with forward hooks on the encoder layers rather than through
transformers' ``output_hidden_states``, whose plumbing changed in 5.x (hidden states
recorded as layer outputs, the last one BEFORE the final LayerNorm); upstream's indexing,
which ours follows, is: the encoder input, each layer's output, and the last layer's output
after the encoder's final LayerNorm (transformers' ``last_hidden_state``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mer_uq.musicfm import MusicFMConfig, load_musicfm, save_checkpoint
from mer_uq.musicfm.checkpoint import MODEL_PREFIX
from mer_uq.musicfm.mel import MelStats
from mer_uq.musicfm.model import MusicFM

transformers = pytest.importorskip("transformers")
from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import (  # noqa: E402
    Wav2Vec2ConformerEncoder,
)

SEED = 1234
BATCH, FRAMES = 2, 57
RTOL = ATOL = 1e-5

CONFIG = MusicFMConfig(
    encoder_dim=64, encoder_depth=2, num_attention_heads=4, intermediate_size=256, conv_dim=8,
    conv_depthwise_kernel_size=31, rotary_embedding_base=10000.0, layer_norm_eps=1e-5,
    hidden_act="swish", codebook_size=32,
)


def reference_encoder(config: MusicFMConfig) -> Wav2Vec2ConformerEncoder:
    """transformers' rotary conformer encoder with the sizes of ``config``, eager attention."""
    hf_config = transformers.Wav2Vec2ConformerConfig(
        hidden_size=config.encoder_dim,
        num_hidden_layers=config.encoder_depth,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        conv_depthwise_kernel_size=config.conv_depthwise_kernel_size,
        position_embeddings_type="rotary",
        rotary_embedding_base=int(config.rotary_embedding_base),  # an int in 5.x
        layer_norm_eps=config.layer_norm_eps,
        hidden_act=config.hidden_act,
        num_conv_pos_embeddings=config.num_conv_pos_embeddings,
        num_conv_pos_embedding_groups=config.num_conv_pos_embedding_groups,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
    )
    hf_config._attn_implementation = "eager"
    return Wav2Vec2ConformerEncoder(hf_config).eval()


@torch.no_grad()
def randomise(module: torch.nn.Module, seed: int) -> None:
    """Seeded random values for every parameter and BatchNorm running statistic, scaled so
    that activations stay O(1) (norm gains near 1, weights ~ 1/sqrt(fan-in)) and attention
    is far from uniform. The rotary inverse frequencies are constants and stay as built."""
    generator = torch.Generator().manual_seed(seed)

    def randn(shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    for name, param in module.named_parameters():
        if param.ndim == 1 and ("norm" in name) and name.endswith("weight"):
            param.copy_(1.0 + 0.2 * randn(param.shape))
        elif param.ndim == 1:
            param.copy_(0.2 * randn(param.shape))
        else:
            fan_in = param[0].numel()
            gain = 2.0 if any(k in name for k in ("linear_q", "linear_k")) else 1.0
            param.copy_(gain * randn(param.shape) / fan_in**0.5)
    for name, buffer in module.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(0.3 * randn(buffer.shape))
        elif name.endswith("running_var"):
            buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))


def layer_outputs(encoder: torch.nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], object]:
    """(output of every ``encoder.layers[i]`` captured by hooks, the encoder's return)."""
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output) -> None:
        captured.append((output[0] if isinstance(output, tuple) else output).clone())

    handles = [layer.register_forward_hook(hook) for layer in encoder.layers]
    try:
        with torch.no_grad():
            result = encoder(x)
    finally:
        for handle in handles:
            handle.remove()
    return captured, result


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory):
    """(transformers' encoder, ours loaded through the project's strict checkpoint loader)."""
    reference = reference_encoder(CONFIG)
    randomise(reference, SEED)
    # A complete released-layout checkpoint: mel/conv/head tensors from a random MusicFM,
    # every conformer.* tensor replaced by transformers' (key names used as they are).
    path = Path(tmp_path_factory.mktemp("hf_reference")) / "tiny.pt"
    save_checkpoint(MusicFM(CONFIG, MelStats(mean=0.0, std=1.0)), path, seed=SEED)
    payload = torch.load(path, weights_only=True)
    conformer_prefix = f"{MODEL_PREFIX}conformer."
    state = {k: v for k, v in payload["state_dict"].items() if not k.startswith(conformer_prefix)}
    state.update({conformer_prefix + k: v.clone() for k, v in reference.state_dict().items()})
    payload["state_dict"] = state
    torch.save(payload, path)
    ours = load_musicfm(path, MelStats(mean=0.0, std=1.0), CONFIG).conformer
    return reference, ours


def test_checkpoint_names_are_transformers_names(encoders) -> None:
    """Every tensor the loader put into our conformer is the transformers tensor of the same
    name (the strict loader already refused any missing/unexpected key)."""
    reference, ours = encoders
    ours_state = ours.state_dict()
    reference_state = reference.state_dict()
    assert set(ours_state) <= set(reference_state)
    unused = set(reference_state) - set(ours_state)
    assert all(k.startswith("pos_conv_embed.") for k in unused), unused
    for key, value in ours_state.items():
        assert torch.equal(value, reference_state[key]), key


def test_rotary_frequencies_match() -> None:
    fresh = MusicFM(CONFIG, MelStats(mean=0.0, std=1.0)).conformer
    torch.testing.assert_close(
        fresh.embed_positions.inv_freq, reference_encoder(CONFIG).embed_positions.inv_freq,
        rtol=0, atol=0,
    )


def test_hidden_states_match_transformers(encoders) -> None:
    reference, ours = encoders
    x = torch.randn(BATCH, FRAMES, CONFIG.encoder_dim, generator=torch.Generator().manual_seed(7))
    reference_layers, reference_out = layer_outputs(reference, x.clone())
    ours_layers, ours_states = layer_outputs(ours, x.clone())

    depth = CONFIG.encoder_depth
    assert len(reference_layers) == len(ours_layers) == depth
    assert len(ours_states) == depth + 1
    # Every layer's own output (the last one before the encoder's final LayerNorm).
    for i, (actual, expected) in enumerate(zip(ours_layers, reference_layers, strict=True)):
        torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL, msg=f"layer {i + 1}")
    # The returned hidden states, upstream indexing.
    torch.testing.assert_close(ours_states[0], x, rtol=0, atol=0)
    for i in range(1, depth):
        torch.testing.assert_close(ours_states[i], reference_layers[i - 1], rtol=RTOL, atol=ATOL,
                                   msg=f"hidden state {i}")
    torch.testing.assert_close(ours_states[depth], reference_out.last_hidden_state, rtol=RTOL,
                               atol=ATOL, msg="last hidden state (after the final LayerNorm)")
    # The comparison is not vacuous: layers change the signal, the final norm changes it too.
    assert (reference_layers[-1] - reference_out.last_hidden_state).abs().max() > 1e-2
    assert (reference_layers[0] - x).abs().max() > 1e-1
