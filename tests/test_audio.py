"""mer_uq.audio: decode, stereo, resample, pad/trim, against independent references
(scipy's polyphase resampler, exact sample values)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import correlate, resample_poly

from mer_uq.audio import (
    TARGET_SAMPLE_RATE,
    AudioDecodeError,
    decode,
    fit_length,
    load_audio,
    resample,
    to_stereo,
)

N_45S = 45 * TARGET_SAMPLE_RATE


def tone(seconds: float, rate: int, freqs: tuple[float, ...] = (440.0, 660.0)) -> np.ndarray:
    """[len(freqs), samples]: one sine per channel, amplitude 0.5."""
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in freqs]).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int, **kwargs) -> Path:
    sf.write(path, audio.T, rate, **kwargs)
    return path


def test_resample_matches_polyphase_reference() -> None:
    audio = tone(1.0, 44_100)
    ours = resample(audio, 44_100, 24_000)
    reference = resample_poly(audio.astype(np.float64), 80, 147, axis=1)  # 24000/44100
    assert ours.shape == (2, 24_000) and ours.dtype == np.float32
    middle = slice(1_000, 23_000)  # both filters differ only in their edge transients
    assert np.abs(ours[:, middle] - reference[:, middle]).max() < 1e-3


def test_24k_audio_passes_through_unchanged(tmp_path: Path) -> None:
    audio = (np.random.default_rng(0).standard_normal((2, N_45S)) * 0.1).astype(np.float32)
    path = write(tmp_path / "1.wav", audio, TARGET_SAMPLE_RATE, subtype="FLOAT")
    loaded = load_audio(path)
    assert loaded.dtype == np.float32
    assert np.array_equal(loaded, audio)


def test_stereo_44k_wav_resampled_and_padded_to_45s(tmp_path: Path) -> None:
    audio = tone(2.0, 44_100)
    loaded = load_audio(write(tmp_path / "2.wav", audio, 44_100, subtype="FLOAT"))
    assert loaded.shape == (2, N_45S)
    np.testing.assert_allclose(loaded[:, :2 * TARGET_SAMPLE_RATE][:, 2_000:-2_000],
                               tone(2.0, TARGET_SAMPLE_RATE)[:, 2_000:-2_000], atol=1e-3)
    assert not loaded[:, 2 * TARGET_SAMPLE_RATE + 100:].any()  # zero padding after the end


def test_mp3_decodes_to_the_written_signal(tmp_path: Path) -> None:
    audio = tone(2.0, 44_100)
    path = write(tmp_path / "3.mp3", audio, 44_100, format="MP3", subtype="MPEG_LAYER_III")
    decoded, rate = decode(path)
    assert rate == 44_100 and decoded.shape[0] == 2
    # mp3 adds encoder delay/padding: align by cross-correlation, then compare.
    for channel in range(2):
        xcorr = correlate(decoded[channel], audio[channel], mode="full", method="fft")
        delay = int(np.argmax(xcorr)) - (audio.shape[1] - 1)
        assert 0 <= delay < 5_000
        aligned = decoded[channel, delay:delay + audio.shape[1]]
        inner = slice(5_000, -5_000)
        assert np.corrcoef(aligned[inner], audio[channel][inner])[0, 1] > 0.99
    assert load_audio(path).shape == (2, N_45S)


def test_mono_is_duplicated(tmp_path: Path) -> None:
    mono = tone(1.0, TARGET_SAMPLE_RATE, freqs=(440.0,))
    loaded = load_audio(write(tmp_path / "4.flac", mono, TARGET_SAMPLE_RATE))
    assert loaded.shape == (2, N_45S)
    assert np.array_equal(loaded[0], loaded[1])
    np.testing.assert_allclose(loaded[0, :TARGET_SAMPLE_RATE], mono[0], atol=1e-4)  # 16-bit flac


def test_long_file_trimmed_to_45s(tmp_path: Path) -> None:
    rate = 8_000  # a low rate keeps the 46 s file small
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 46 * rate)).astype(np.float32)
    loaded = load_audio(write(tmp_path / "5.wav", audio, rate, subtype="FLOAT"))
    assert loaded.shape == (2, N_45S)
    full = resample(audio, rate, TARGET_SAMPLE_RATE)
    assert np.array_equal(loaded, full[:, :N_45S])


def test_fit_length_pads_and_trims_exactly() -> None:
    audio = np.arange(10, dtype=np.float32).reshape(2, 5)
    assert np.array_equal(fit_length(audio, 3), audio[:, :3])
    padded = fit_length(audio, 7)
    assert np.array_equal(padded[:, :5], audio) and not padded[:, 5:].any()
    assert fit_length(audio, 5) is audio


def test_corrupt_file_error_names_it(tmp_path: Path) -> None:
    path = tmp_path / "6.mp3"
    path.write_bytes(b"this is not audio" * 100)
    with pytest.raises(AudioDecodeError, match=r"6\.mp3"):
        load_audio(path)


def test_more_than_two_channels_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "7.wav", tone(0.1, 8_000, (100.0, 200.0, 300.0)), 8_000)
    with pytest.raises(AudioDecodeError, match=r"7\.wav.*3 channels"):
        load_audio(path)
    with pytest.raises(AudioDecodeError):
        to_stereo(np.zeros((4, 10), np.float32))
