"""Mel front end against librosa (an independent STFT, mel filterbank and dB)."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from mer_uq.musicfm import MelFrontEnd, MelStats, MusicFMConfig, htk_mel_filterbank

CONFIG = MusicFMConfig()
STATS = MelStats(mean=6.768444971712967, std=18.417922652295623)


def test_htk_filterbank_matches_librosa() -> None:
    ours = htk_mel_filterbank(CONFIG.n_freqs, CONFIG.n_mels, CONFIG.sample_rate).numpy()
    reference = librosa.filters.mel(sr=CONFIG.sample_rate, n_fft=CONFIG.n_fft,
                                    n_mels=CONFIG.n_mels, htk=True, norm=None).T
    assert ours.shape == (1025, 128)
    np.testing.assert_allclose(ours, reference, atol=1e-6)


@pytest.fixture(scope="module")
def noise_and_tone() -> np.ndarray:
    """1.2 s: noise plus a 1 kHz tone, so every mel band is well above the dB floor."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.2 * CONFIG.sample_rate)) / CONFIG.sample_rate
    audio = 0.1 * rng.standard_normal(t.size) + 0.5 * np.sin(2 * np.pi * 1000 * t)
    return audio.astype(np.float32)


def test_db_mel_matches_librosa(noise_and_tone: np.ndarray) -> None:
    front = MelFrontEnd(CONFIG, STATS)
    ours = front.power_mel_db(torch.from_numpy(noise_and_tone)[None])[0].numpy()
    power = np.abs(librosa.stft(noise_and_tone.astype(np.float64), n_fft=2048, hop_length=240,
                                window="hann", center=True, pad_mode="reflect")) ** 2
    fb = librosa.filters.mel(sr=24_000, n_fft=2048, n_mels=128, htk=True, norm=None)
    reference = librosa.power_to_db(fb @ power, ref=1.0, amin=1e-10, top_db=None)
    assert ours.shape == reference.shape == (128, noise_and_tone.size // 240 + 1)
    np.testing.assert_allclose(ours, reference, atol=2e-3)  # dB; fp32 STFT vs fp64


def test_forward_drops_last_frame_and_normalises(noise_and_tone: np.ndarray) -> None:
    front = MelFrontEnd(CONFIG, STATS)
    wave = torch.from_numpy(noise_and_tone)[None]
    db = front.power_mel_db(wave)
    normalised = front(wave)
    assert normalised.shape[-1] == noise_and_tone.size // CONFIG.hop_length
    torch.testing.assert_close(normalised, (db[..., :-1] - STATS.mean) / STATS.std)


def test_silence_hits_the_db_floor() -> None:
    front = MelFrontEnd(CONFIG, STATS)
    db = front.power_mel_db(torch.zeros(1, 4800))
    assert torch.all(db == -100.0)  # 10 log10(1e-10)


def test_stats_read_from_json(musicfm_fixtures: Path) -> None:
    stats = MelStats.from_json(musicfm_fixtures / "msd_stats.json")
    assert stats == STATS


def test_stats_missing_key_named(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"melspec_2048_mean": 1.0}))
    with pytest.raises(ValueError, match=r"stats\.json.*melspec_2048_std"):
        MelStats.from_json(path)
