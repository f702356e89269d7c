"""The conformer encoder of MusicFM, in plain torch.

MusicFM's encoder is transformers' ``Wav2Vec2ConformerEncoder`` with rotary position
embeddings. That class changed its forward signature and hidden-state plumbing across
transformers releases, so the embedding path depends on this self-contained copy of the
computation instead; parameter names match the released checkpoint (``conformer.*``).

Two details of the Wav2Vec2 rotary variant that differ from most rotary transformers and
are reproduced on purpose: the rotation is applied to the layer input BEFORE the query/key
projections, and it pairs dimension i with i + head_dim/2 (rotate-half), per head.
The checkpoint also holds a convolutional position embedding (``pos_conv_embed``) that the
rotary encoder builds but never calls; it is checked and ignored by the loader.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mer_uq.musicfm.config import MusicFMConfig


def rotary_inverse_frequencies(head_dim: int, base: float) -> torch.Tensor:
    """1 / base^(2i / head_dim) for i < head_dim / 2: one rotation speed per dimension pair."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


class RotaryPositions(nn.Module):
    """cos/sin tables of rotary positions, [2, frames, head_dim] in the input's dtype."""

    def __init__(self, config: MusicFMConfig) -> None:
        super().__init__()
        self.register_buffer(
            "inv_freq", rotary_inverse_frequencies(config.head_dim, config.rotary_embedding_base)
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(hidden_states.shape[1], device=self.inv_freq.device)
        angles = torch.outer(positions.to(self.inv_freq.dtype), self.inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        return torch.stack((angles.cos(), angles.sin())).to(hidden_states.dtype)


def apply_rotary(x: torch.Tensor, cos_sin: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rotate each head's (i, i + d/2) pairs of x [batch, frames, dim] by position."""
    batch, frames, dim = x.shape
    heads = x.view(batch, frames, n_heads, dim // n_heads)
    first, second = heads.chunk(2, dim=-1)
    rotated_half = torch.cat((-second, first), dim=-1)
    cos = cos_sin[0, :frames, None, :]
    sin = cos_sin[1, :frames, None, :]
    return (heads * cos + rotated_half * sin).reshape(batch, frames, dim)


class FeedForward(nn.Module):
    """Linear -> swish -> linear (dropout is inactive at inference and omitted)."""

    def __init__(self, config: MusicFMConfig) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(config.encoder_dim, config.intermediate_size)
        self.output_dense = nn.Linear(config.intermediate_size, config.encoder_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.silu(self.intermediate_dense(x)))


class RotarySelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions on the query/key input."""

    def __init__(self, config: MusicFMConfig) -> None:
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        dim = config.encoder_dim
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = x.shape
        return x.view(batch, frames, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, cos_sin: torch.Tensor) -> torch.Tensor:
        rotated = apply_rotary(x, cos_sin, self.n_heads)
        query = self._split_heads(self.linear_q(rotated))
        key = self._split_heads(self.linear_k(rotated))
        value = self._split_heads(self.linear_v(x))
        # Scaled by 1/sqrt(head_dim); the fused kernel picks flash/memory-efficient paths on GPU.
        attended = F.scaled_dot_product_attention(query, key, value)
        batch, _, frames, _ = attended.shape
        return self.linear_out(attended.transpose(1, 2).reshape(batch, frames, -1))


class ConvolutionModule(nn.Module):
    """LayerNorm -> pointwise conv (2x, GLU) -> depthwise conv -> BatchNorm -> swish ->
    pointwise conv, over time."""

    def __init__(self, config: MusicFMConfig) -> None:
        super().__init__()
        dim, kernel = config.encoder_dim, config.conv_depthwise_kernel_size
        self.layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.pointwise_conv1 = nn.Conv1d(dim, 2 * dim, 1, bias=False)
        self.depthwise_conv = nn.Conv1d(
            dim, dim, kernel, padding=(kernel - 1) // 2, groups=dim, bias=False
        )
        self.batch_norm = nn.BatchNorm1d(dim)
        self.pointwise_conv2 = nn.Conv1d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer_norm(x).transpose(1, 2)  # [batch, dim, frames]
        h = F.glu(self.pointwise_conv1(h), dim=1)
        h = F.silu(self.batch_norm(self.depthwise_conv(h)))
        return self.pointwise_conv2(h).transpose(1, 2)


class ConformerLayer(nn.Module):
    """Macaron block: half-step FFN, attention, convolution, half-step FFN, LayerNorm."""

    def __init__(self, config: MusicFMConfig) -> None:
        super().__init__()
        dim, eps = config.encoder_dim, config.layer_norm_eps
        self.ffn1_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.ffn1 = FeedForward(config)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.self_attn = RotarySelfAttention(config)
        self.conv_module = ConvolutionModule(config)
        self.ffn2_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.ffn2 = FeedForward(config)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, cos_sin: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(self.ffn1_layer_norm(x))
        x = x + self.self_attn(self.self_attn_layer_norm(x), cos_sin)
        x = x + self.conv_module(x)
        x = x + 0.5 * self.ffn2(self.ffn2_layer_norm(x))
        return self.final_layer_norm(x)


class ConformerEncoder(nn.Module):
    """Stack of conformer layers returning every hidden state.

    Returns ``encoder_depth + 1`` tensors: the input (the conv front end's output), then
    each layer's output, the last one passed through the encoder's final LayerNorm, which
    is what upstream's ``hidden_states[i]`` indexes.
    """

    def __init__(self, config: MusicFMConfig) -> None:
        super().__init__()
        self.embed_positions = RotaryPositions(config)
        self.layers = nn.ModuleList(ConformerLayer(config) for _ in range(config.encoder_depth))
        self.layer_norm = nn.LayerNorm(config.encoder_dim, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        cos_sin = self.embed_positions(x)
        states = [x]
        for layer in self.layers:
            x = layer(x, cos_sin)
            states.append(x)
        states[-1] = self.layer_norm(states[-1])
        return states
