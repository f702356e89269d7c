"""Mel front end of MusicFM: waveform -> normalised log-mel spectrogram.

Upstream computes this with torchaudio's MelSpectrogram + AmplitudeToDB; torchaudio is not
usable with every torch build, so this is the same computation written with torch.stft.
The released checkpoint carries the STFT window and the mel filterbank, and those buffers
are used as loaded; the HTK filterbank below only serves random-init models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mer_uq.musicfm.config import MusicFMConfig, read_json_object

# AmplitudeToDB's floor: power values below it are clamped before the log.
POWER_FLOOR = 1e-10
# Key prefix of the statistics in msd_stats.json that belong to this front end.
MEL_STATS_KEY = "melspec_2048"


def mel_to_hz_htk(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def htk_mel_filterbank(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular HTK-scale filterbank without area normalisation, shape [n_freqs, n_mels].

    Each filter rises linearly from the previous mel-spaced corner frequency to its own and
    falls to the next one, peaking at 1 (the torchaudio ``mel_scale="htk", norm=None``
    convention that MusicFM was trained with). Computed in float64, returned as float32.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    bin_freqs = torch.linspace(0.0, sample_rate / 2, n_freqs, dtype=torch.float64)
    mel_min, mel_max = (2595.0 * math.log10(1.0 + f / 700.0) for f in (f_min, f_max))
    mel_corners = torch.linspace(mel_min, mel_max, n_mels + 2, dtype=torch.float64)
    hz_corners = mel_to_hz_htk(mel_corners)
    lower, centre, upper = hz_corners[:-2], hz_corners[1:-1], hz_corners[2:]
    freqs = bin_freqs[:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


@dataclass(frozen=True)
class MelStats:
    """Global mean and std of the dB mel spectrogram over the pre-training corpus."""

    mean: float
    std: float

    @classmethod
    def from_json(cls, path: str | Path) -> MelStats:
        """Read ``melspec_2048_mean``/``_std`` from a MusicFM stats file (msd_stats.json)."""
        path = Path(path)
        values = read_json_object(path, "MusicFM stats")
        keys = (f"{MEL_STATS_KEY}_mean", f"{MEL_STATS_KEY}_std")
        missing = [k for k in keys if k not in values]
        if missing:
            raise ValueError(f"{path}: stats JSON lacks keys {missing}")
        mean, std = float(values[keys[0]]), float(values[keys[1]])
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"{path}: invalid mel stats mean={mean} std={std}")
        return cls(mean=mean, std=std)


class MelFrontEnd(nn.Module):
    """Waveform [batch, samples] -> normalised dB mel [batch, n_mels, samples // hop].

    Centred STFT with reflect padding, power 2, mel projection, 10 log10 with a 1e-10 floor,
    then the last frame is dropped (so 45 s at hop 240 gives exactly 4500 frames, a multiple
    of the conv front end's factor 4) and the dB values are standardised with the corpus
    statistics. Always runs in float32: the dB of a half-precision power spectrum loses the
    quiet bins that the statistics were computed on.
    """

    def __init__(self, config: MusicFMConfig, stats: MelStats) -> None:
        super().__init__()
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.stats = stats
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True))
        self.register_buffer(
            "filterbank",
            htk_mel_filterbank(config.n_freqs, config.n_mels, config.sample_rate),
        )

    def power_mel_db(self, waveform: torch.Tensor) -> torch.Tensor:
        """Un-normalised dB mel of every frame, including the last (for tests)."""
        spectrum = torch.stft(
            waveform.float(),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self.window.float(),
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = spectrum.abs().pow(2.0)
        mel = torch.matmul(power.transpose(-1, -2), self.filterbank.float()).transpose(-1, -2)
        return 10.0 * torch.log10(torch.clamp(mel, min=POWER_FLOOR))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            mel_db = self.power_mel_db(waveform)[..., :-1]
            return (mel_db - self.stats.mean) / self.stats.std
