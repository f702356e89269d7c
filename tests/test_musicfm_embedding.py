"""Song pooling: batching, channel symmetry, the pooling formula and reduced precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mer_uq.musicfm import MelStats, MusicFM, MusicFMConfig, embed_batch, embed_song, layer_column

TINY = MusicFMConfig(encoder_dim=32, encoder_depth=2, num_attention_heads=4,
                     intermediate_size=64, conv_dim=4, codebook_size=64)
SECONDS = 2


@pytest.fixture(scope="module")
def model() -> MusicFM:
    torch.manual_seed(0)
    return MusicFM(TINY, MelStats(mean=6.77, std=18.4)).eval()


@pytest.fixture(scope="module")
def songs() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.2 * rng.standard_normal((3, 2, SECONDS * 24_000))).astype(np.float32)


def test_pooled_is_mean_over_time_and_channels(model: MusicFM, songs: np.ndarray) -> None:
    pooled = embed_song(model, songs[0])
    with torch.inference_mode():
        states = model(torch.from_numpy(songs[0]))
    assert pooled.shape == (TINY.n_hidden_states, TINY.encoder_dim)
    for layer, state in enumerate(states):
        assert state.shape == (2, SECONDS * 24_000 // 240 // 4, TINY.encoder_dim)
        np.testing.assert_allclose(pooled[layer], state.numpy().mean(axis=(0, 1)), atol=1e-6)


def test_batch_equals_songs_alone(model: MusicFM, songs: np.ndarray) -> None:
    batched = embed_batch(model, songs)
    alone = np.stack([embed_song(model, song) for song in songs])
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)
    assert not np.allclose(batched[0], batched[1])  # songs are not mixed together


def test_channel_order_does_not_matter(model: MusicFM, songs: np.ndarray) -> None:
    np.testing.assert_allclose(embed_song(model, songs[0]), embed_song(model, songs[0][::-1]),
                               rtol=1e-5, atol=1e-6)


def test_bf16_autocast_close_to_fp32(model: MusicFM, songs: np.ndarray) -> None:
    fp32 = embed_song(model, songs[0])
    bf16 = embed_song(model, songs[0], precision="bf16")
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    relative = np.abs(bf16 - fp32).max() / np.abs(fp32).max()
    assert 0 < relative < 0.05  # bf16 has an 8-bit mantissa: different, but close


def test_bad_input_rejected(model: MusicFM) -> None:
    with pytest.raises(ValueError, match="songs, channels, samples"):
        embed_batch(model, np.zeros((2, 48_000), np.float32))
    with pytest.raises(ValueError, match="precision"):
        embed_song(model, np.zeros((2, 48_000), np.float32), precision="int8")  # type: ignore[arg-type]


def test_layer_column_names() -> None:
    assert [layer_column(i) for i in (0, 7, 12)] == ["layer_00", "layer_07", "layer_12"]
