"""The implementation must reproduce upstream MusicFM (golden outputs of the reference code
on a tiny random-weight model; tests/fixtures/musicfm/golden, see tests/fixtures/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mer_uq.audio import load_audio
from mer_uq.musicfm import MusicFMConfig, embed_song, load_musicfm

MAX_RELATIVE_ERROR = 1e-4


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute deviation relative to the reference's largest magnitude."""
    assert actual.shape == expected.shape
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.fixture(scope="module")
def golden(musicfm_fixtures: Path):
    folder = musicfm_fixtures / "golden"
    config = MusicFMConfig.from_json(folder / "tiny_config.json")
    model = load_musicfm(folder / "tiny_checkpoint.pt", musicfm_fixtures / "msd_stats.json", config)
    audio = load_audio(folder / "audio_24k_stereo.wav")
    with np.load(folder / "expected.npz") as expected:
        return model, audio, dict(expected)


def test_golden_normalized_mel(golden) -> None:
    model, audio, expected = golden
    with torch.inference_mode():
        mel = model.mel(torch.from_numpy(audio[:1]))[0].numpy()
    assert relative_error(mel, expected["normalized_mel_channel0"]) < MAX_RELATIVE_ERROR


def test_golden_hidden_states(golden) -> None:
    model, audio, expected = golden
    with torch.inference_mode():
        states = model(torch.from_numpy(audio[:1]))
    actual = np.stack([s[0].numpy() for s in states])
    reference = expected["hidden_states_channel0"]
    for layer in range(reference.shape[0]):
        assert relative_error(actual[layer], reference[layer]) < MAX_RELATIVE_ERROR, layer


def test_golden_pooled_per_layer(golden) -> None:
    model, audio, expected = golden
    pooled = embed_song(model, audio)
    assert pooled.dtype == np.float32
    assert relative_error(pooled, expected["pooled_per_layer"]) < MAX_RELATIVE_ERROR
