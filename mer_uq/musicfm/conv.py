"""Convolutional front end of MusicFM: normalised mel at 100 Hz -> encoder frames at 25 Hz.

Two residual blocks, each halving both the frequency and the time axis, then one linear
layer from (channels x remaining mel bands) to the encoder width. Attribute names follow the
released checkpoint (``conv.conv.<i>.conv1`` ... ``conv.linear``) so its state dict loads
without renaming.
"""

from __future__ import annotations

import torch
from torch import nn

from mer_uq.musicfm.config import MusicFMConfig

# Each block strides by 2 in frequency and time: two blocks -> factor 4 (100 Hz -> 25 Hz).
STRIDE = 2
N_BLOCKS = 2


class ResidualConvBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a strided conv-BN shortcut, then ReLU.

    The shortcut always exists here because every MusicFM block strides; BatchNorm uses its
    running statistics (the model is only ever run in eval mode).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=STRIDE, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = nn.Conv2d(in_channels, out_channels, 3, stride=STRIDE, padding=1)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = self.bn3(self.conv3(x))
        return torch.relu(main + shortcut)


class ConvFrontEnd(nn.Module):
    """[batch, n_mels, frames] -> [batch, frames // 4, encoder_dim]."""

    def __init__(self, config: MusicFMConfig) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            ResidualConvBlock(1, config.conv_dim),
            ResidualConvBlock(config.conv_dim, config.conv_dim),
        )
        reduced_bands = config.n_mels // STRIDE**N_BLOCKS
        self.linear = nn.Linear(config.conv_dim * reduced_bands, config.encoder_dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        features = self.conv(mel.unsqueeze(1))  # [batch, channels, bands, frames]
        batch, channels, bands, frames = features.shape
        # Flatten channel-major, band-minor per frame, the order the linear layer was trained on.
        flat = features.permute(0, 3, 1, 2).reshape(batch, frames, channels * bands)
        return self.linear(flat)
