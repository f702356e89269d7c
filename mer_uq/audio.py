"""Audio loading for the embedding model: any file -> stereo float32 at 24 kHz, 45 s.

DEAM's excerpts are 45 s, 44.1 kHz stereo mp3; MusicFM expects 24 kHz. Every song is brought
to exactly the same shape so that songs batch together and every song's embedding averages
over the same number of frames. soundfile (libsndfile >= 1.1 decodes mp3) and soxr replace
torchaudio, which does not install cleanly beside every torch build.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

TARGET_SAMPLE_RATE = 24_000
TARGET_SECONDS = 45.0
N_CHANNELS = 2
AUDIO_SUFFIXES: tuple[str, ...] = (".mp3", ".wav", ".flac")


AUDIO_EXTRA_MODULES: tuple[str, ...] = ("soundfile", "soxr")


class AudioDecodeError(RuntimeError):
    """A file that cannot be decoded as audio (corrupt, empty, unsupported)."""


class AudioExtraMissingError(ImportError):
    """soundfile or soxr is not installed (the optional ``audio`` extra)."""


def require_audio_extra() -> None:
    """Fail in one line, before any work, when decoding would need a missing package.
    The packages are imported only when audio is decoded, so everything else (``--help``,
    the data, the sweep) works without them."""
    missing = [m for m in AUDIO_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise AudioExtraMissingError(
            f"decoding audio needs {', '.join(missing)}: pip install 'mer-uq[audio]'"
        )


def _audio_module(name: str) -> Any:
    require_audio_extra()
    return importlib.import_module(name)


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """File -> ([channels, samples] float32, sample rate), samples as stored."""
    path = Path(path)
    try:
        frames, sample_rate = _audio_module("soundfile").read(
            path, dtype="float32", always_2d=True
        )
    except Exception as err:  # libsndfile raises several unrelated types
        raise AudioDecodeError(f"{path}: cannot decode audio ({err})") from err
    if frames.shape[0] == 0 or frames.shape[1] == 0:
        raise AudioDecodeError(f"{path}: decoded to no samples")
    return np.ascontiguousarray(frames.T), int(sample_rate)


def to_stereo(audio: np.ndarray, source: str = "audio") -> np.ndarray:
    """Mono is duplicated onto both channels; more than two channels is an error (a silent
    down-mix would change what the model hears)."""
    channels = audio.shape[0]
    if channels == N_CHANNELS:
        return audio
    if channels == 1:
        return np.repeat(audio, N_CHANNELS, axis=0)
    raise AudioDecodeError(f"{source}: {channels} channels; expected mono or stereo")


def resample(
    audio: np.ndarray, source_rate: int, target_rate: int = TARGET_SAMPLE_RATE
) -> np.ndarray:
    """[channels, samples] from ``source_rate`` to ``target_rate`` with soxr's HQ filter.

    Returns the input object itself when the rates already agree, so 24 kHz audio passes
    through bit for bit.
    """
    if source_rate == target_rate:
        return audio
    resampled = _audio_module("soxr").resample(audio.T, source_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(resampled.T, dtype=np.float32)


def fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim the end, or pad the end with zeros, to exactly ``n_samples`` per channel."""
    length = audio.shape[1]
    if length == n_samples:
        return audio
    if length > n_samples:
        return np.ascontiguousarray(audio[:, :n_samples])
    return np.pad(audio, ((0, 0), (0, n_samples - length)))


def load_audio(
    path: str | Path,
    sample_rate: int = TARGET_SAMPLE_RATE,
    seconds: float = TARGET_SECONDS,
) -> np.ndarray:
    """Decode, make stereo, resample and pad/trim: [2, round(seconds * sample_rate)] float32.

    Raises AudioDecodeError naming the file when it cannot be decoded.
    """
    audio, source_rate = decode(path)
    stereo = to_stereo(audio, source=str(path))
    return fit_length(resample(stereo, source_rate, sample_rate), round(seconds * sample_rate))
