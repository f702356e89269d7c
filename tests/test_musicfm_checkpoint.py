"""Strict checkpoint loading: the released key layout, round trips, and clear rejections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mer_uq.musicfm import (
    CheckpointError,
    MelStats,
    MusicFM,
    MusicFMConfig,
    checkpoint_layout,
    load_musicfm,
    save_checkpoint,
)

STATS = MelStats(mean=6.768444971712967, std=18.417922652295623)
TINY = MusicFMConfig(encoder_dim=32, encoder_depth=2, num_attention_heads=4,
                     intermediate_size=64, conv_dim=4, codebook_size=64)


def test_full_size_layout_is_the_released_one(musicfm_fixtures: Path) -> None:
    released = json.loads((musicfm_fixtures / "checkpoint_keys.json").read_text())["keys"]
    expected = {key: (tuple(shape), dtype) for key, shape, dtype in released}
    ours = {key: (shape, str(dtype).removeprefix("torch."))
            for key, (shape, dtype) in checkpoint_layout(MusicFMConfig()).items()}
    assert len(ours) == 465
    assert ours == expected


@pytest.fixture(scope="module")
def tiny_model() -> MusicFM:
    torch.manual_seed(0)
    model = MusicFM(TINY, STATS)
    with torch.no_grad():  # non-trivial norms and running stats, as in a trained model
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if "running_var" in name:
                tensor.uniform_(0.5, 2.0)
            elif "running_mean" in name or "norm" in name:
                tensor.normal_(0.0 if name.endswith("bias") or "mean" in name else 1.0, 0.1)
    return model.eval()


@pytest.mark.parametrize("legacy", [True, False])
def test_tiny_round_trip_in_released_layout(tiny_model: MusicFM, tmp_path: Path,
                                            legacy: bool) -> None:
    path = tmp_path / "tiny.pt"
    save_checkpoint(tiny_model, path, legacy_weight_norm=legacy)
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["state_dict"]
    keys = set(raw["state_dict"])
    assert all(k.startswith("model.") for k in keys)
    assert ("model.conformer.pos_conv_embed.conv.weight_g" in keys) is legacy
    assert "model.preprocessor_melspec_2048.mel_stft.mel_scale.fb" in keys
    assert len(keys) == len(checkpoint_layout(TINY))

    loaded = load_musicfm(path, STATS, TINY)
    assert not loaded.training
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    wave = torch.randn(2, 24_000)
    with torch.inference_mode():
        for a, b in zip(loaded(wave), tiny_model(wave), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def _resave(src: Path, dst: Path, edit) -> Path:
    payload = torch.load(src, weights_only=True)
    edit(payload["state_dict"])
    torch.save(payload, dst)
    return dst


@pytest.fixture
def tiny_file(tiny_model: MusicFM, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pt"
    save_checkpoint(tiny_model, path)
    return path


def test_missing_key_is_named(tiny_file: Path, tmp_path: Path) -> None:
    bad = _resave(tiny_file, tmp_path / "missing.pt",
                  lambda sd: sd.pop("model.conformer.layers.1.self_attn.linear_k.bias"))
    with pytest.raises(CheckpointError) as info:
        load_musicfm(bad, STATS, TINY)
    message = str(info.value)
    assert "missing.pt" in message and "missing keys (1):" in message
    assert "conformer.layers.1.self_attn.linear_k.bias" in message


def test_wrong_shape_is_named(tiny_file: Path, tmp_path: Path) -> None:
    def widen(sd: dict) -> None:
        sd["model.conv.linear.bias"] = torch.zeros(33)

    with pytest.raises(CheckpointError) as info:
        load_musicfm(_resave(tiny_file, tmp_path / "shape.pt", widen), STATS, TINY)
    assert "conv.linear.bias: checkpoint (33,) vs model (32,)" in str(info.value)


def test_unexpected_key_is_named(tiny_file: Path, tmp_path: Path) -> None:
    def add(sd: dict) -> None:
        sd["model.conformer.layers.2.ffn1.output_dense.weight"] = torch.zeros(32, 64)

    with pytest.raises(CheckpointError, match=r"(?s)unexpected keys \(1\).*layers\.2\.ffn1"):
        load_musicfm(_resave(tiny_file, tmp_path / "extra.pt", add), STATS, TINY)


def test_full_size_config_on_tiny_file_lists_mismatches(tiny_file: Path) -> None:
    expected = r"(?s)missing keys \(340\).*and 320 more.*shape mismatches \(113\)"
    with pytest.raises(CheckpointError, match=expected):
        load_musicfm(tiny_file, STATS)  # default = full-size config


def test_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        load_musicfm(junk, STATS, TINY)
    bare = tmp_path / "bare.pt"
    torch.save({"conv.linear.bias": torch.zeros(32)}, bare)
    with pytest.raises(CheckpointError, match=r"bare\.pt.*Lightning-style"):
        load_musicfm(bare, STATS, TINY)
    with pytest.raises(CheckpointError, match="not found"):
        load_musicfm(tmp_path / "absent.pt", STATS, TINY)


def test_config_json_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"encoder_dim": 64, "encoder_layers": 2}))
    with pytest.raises(ValueError, match=r"config\.json.*encoder_layers"):
        MusicFMConfig.from_json(path)


def test_config_json_golden(musicfm_fixtures: Path) -> None:
    config = MusicFMConfig.from_json(musicfm_fixtures / "golden" / "tiny_config.json")
    assert (config.encoder_dim, config.encoder_depth, config.conv_dim) == (64, 2, 8)
    assert config.n_hidden_states == 3
    assert MusicFMConfig.from_dict(config.to_dict()) == config


def test_invalid_sizes_rejected() -> None:
    with pytest.raises(ValueError, match="not divisible by num_attention_heads"):
        MusicFMConfig(encoder_dim=30, num_attention_heads=4)
