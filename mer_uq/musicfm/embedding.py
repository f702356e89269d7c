"""Song-level MusicFM embeddings: every hidden state averaged over time and channels.

The study's features are one vector per song. Both stereo channels go through the model as
separate batch items and their frame-wise hidden states are averaged together with time, so
a song's vector does not depend on which channel carries what. Every hidden state is kept
(``layer_00`` = conv front end .. ``layer_12``): which layer the paper used is not stated,
and re-embedding to try another would cost far more than storing 13 vectors.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import numpy as np
import torch

from mer_uq.musicfm.model import MusicFM

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# The upstream README extracts ``get_latent(wav, layer_ix=7)``; a middle layer is also what
# probing studies of BEST-RQ-style music models favour for semantic tasks. The paper does not
# say, so every layer is stored and the sweep can pick another with --feature-column.
DEFAULT_LAYER = 7


def layer_column(layer: int) -> str:
    """Feature-table column of hidden state ``layer`` (0 = conv front end)."""
    return f"layer_{layer:02d}"


def _autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _AUTOCAST_DTYPES:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])


def model_device(model: MusicFM) -> torch.device:
    return next(model.parameters()).device


def embed_batch(
    model: MusicFM, waveforms: torch.Tensor | np.ndarray, precision: Precision = "fp32"
) -> np.ndarray:
    """[songs, channels, samples] float audio at the model's rate -> [songs, states, dim].

    Songs must share one length (the pipeline pads/trims to 45 s). ``precision`` bf16/fp16
    runs the conv front end and conformer under autocast (the mel front end stays fp32);
    pooling is always in fp32. The model is switched to eval mode.
    """
    if isinstance(waveforms, np.ndarray):  # views such as x[::-1] have negative strides
        waveforms = np.ascontiguousarray(waveforms)
    waveforms = torch.as_tensor(waveforms)
    if waveforms.ndim != 3:
        raise ValueError(
            f"waveforms must be [songs, channels, samples], got {tuple(waveforms.shape)}"
        )
    songs, channels, samples = waveforms.shape
    device = model_device(model)
    model.eval()
    with torch.inference_mode(), _autocast(device, precision):
        flat = waveforms.to(device=device, dtype=torch.float32).reshape(songs * channels, samples)
        states = model(flat)
        pooled = [
            state.float().reshape(songs, channels, state.shape[1], state.shape[2]).mean(dim=(1, 2))
            for state in states
        ]
    return torch.stack(pooled, dim=1).cpu().numpy()


def embed_song(
    model: MusicFM, waveform: torch.Tensor | np.ndarray, precision: Precision = "fp32"
) -> np.ndarray:
    """[channels, samples] -> [states, dim]: one pooled vector per hidden state."""
    return embed_batch(model, waveform[None], precision)[0]
