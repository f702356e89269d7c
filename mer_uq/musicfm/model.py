"""MusicFM-25Hz as used for embedding: mel front end -> conv front end -> conformer.

Only the path that produces hidden states is built. The pre-training heads in the released
checkpoint (quantizer, output projection, cls token, unused conv position embedding) are
validated and ignored by ``mer_uq.musicfm.checkpoint``.
"""

from __future__ import annotations

import torch
from torch import nn

from mer_uq.musicfm.config import MusicFMConfig
from mer_uq.musicfm.conformer import ConformerEncoder
from mer_uq.musicfm.conv import ConvFrontEnd
from mer_uq.musicfm.mel import MelFrontEnd, MelStats


class MusicFM(nn.Module):
    """Waveform [batch, samples] at ``config.sample_rate`` -> list of hidden states.

    ``forward`` returns ``config.n_hidden_states`` tensors [batch, samples // hop // 4, dim]:
    index 0 is the conv front end's output, index i the output of conformer layer i (the
    last after the encoder's final LayerNorm) -- the same indexing as upstream's
    ``get_latent(x, layer_ix=i)``. A fresh instance has random weights; load real ones with
    ``mer_uq.musicfm.checkpoint.load_musicfm``.
    """

    def __init__(self, config: MusicFMConfig, stats: MelStats) -> None:
        super().__init__()
        self.config = config
        self.mel = MelFrontEnd(config, stats)
        self.conv = ConvFrontEnd(config)
        self.conformer = ConformerEncoder(config)

    def forward(self, waveform: torch.Tensor) -> list[torch.Tensor]:
        return self.conformer(self.conv(self.mel(waveform)))
