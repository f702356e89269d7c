"""Sizes of a MusicFM model.

One frozen dataclass, so that the full-size model (the defaults, MusicFM-MSD as released) and
the tiny random-weight models of the tests go through exactly the same code; only numbers
differ. The JSON form is what ``sweep.embed --model-config`` reads and what the feature table
records in its metadata, so a table always says which model produced it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MusicFMConfig:
    """Sizes and signal-processing constants of MusicFM-25Hz (defaults: MusicFM-MSD).

    The conformer numbers are those of the Hugging Face config
    ``facebook/wav2vec2-conformer-rope-large-960h-ft`` that upstream MusicFM builds its
    encoder from; ``num_conv_pos_embeddings``/``num_conv_pos_embedding_groups``,
    ``codebook_*`` and ``num_codebooks`` only size checkpoint tensors that embedding never
    uses, but the strict loader still checks their shapes.
    """

    encoder_dim: int = 1024
    encoder_depth: int = 12
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    conv_dim: int = 512
    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 240
    sample_rate: int = 24000
    conv_depthwise_kernel_size: int = 31
    rotary_embedding_base: float = 10000.0
    layer_norm_eps: float = 1e-5
    hidden_act: str = "swish"
    codebook_size: int = 4096
    codebook_dim: int = 16
    num_codebooks: int = 1
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16

    def __post_init__(self) -> None:
        problems = []
        if self.encoder_dim % self.num_attention_heads:
            problems.append(
                f"encoder_dim {self.encoder_dim} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        elif self.head_dim % 2:
            problems.append(f"head size {self.head_dim} must be even for rotary positions")
        if self.n_mels % 4:
            problems.append(f"n_mels {self.n_mels} must be divisible by 4 (two stride-2 convs)")
        if self.conv_depthwise_kernel_size % 2 == 0:
            problems.append(
                f"conv_depthwise_kernel_size {self.conv_depthwise_kernel_size} must be odd "
                "('same' padding)"
            )
        if self.hidden_act not in ("swish", "silu"):
            problems.append(f"hidden_act {self.hidden_act!r} is not supported (swish/silu)")
        if self.encoder_dim % self.num_conv_pos_embedding_groups:
            problems.append(
                f"encoder_dim {self.encoder_dim} is not divisible by "
                f"num_conv_pos_embedding_groups {self.num_conv_pos_embedding_groups}"
            )
        for name in ("encoder_dim", "encoder_depth", "conv_dim", "n_fft", "hop_length",
                     "sample_rate", "intermediate_size"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if problems:
            raise ValueError("invalid MusicFM config: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.encoder_dim // self.num_attention_heads

    @property
    def n_freqs(self) -> int:
        """Number of one-sided STFT bins (rows of the mel filterbank)."""
        return self.n_fft // 2 + 1

    @property
    def n_hidden_states(self) -> int:
        """Conv front-end output plus one state per conformer layer."""
        return self.encoder_depth + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> MusicFMConfig:
        """Build from a mapping; unknown keys are an error (a typo must not silently fall
        back to a default size)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown MusicFM config keys {unknown}; known keys: {sorted(known)}"
            )
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> MusicFMConfig:
        values = read_json_object(path, "MusicFM config")
        return cls.from_dict(values, source=str(path))


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON file that must hold one object; errors name the file and what it was for."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the {what} JSON ({err})") from err
    if not isinstance(values, dict):
        raise ValueError(f"{path}: the {what} JSON must be an object")
    return values
