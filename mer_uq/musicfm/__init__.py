"""MusicFM (Won, Hung, Le, ICASSP 2024) re-implemented for frozen-feature extraction.

Own implementation (no torchaudio, no transformers) that loads the released MusicFM-MSD
checkpoint strictly and reproduces upstream's hidden states; see docs/embedding.md.
"""

from mer_uq.musicfm.checkpoint import (
    CheckpointError,
    checkpoint_layout,
    load_musicfm,
    read_checkpoint,
    save_checkpoint,
)
from mer_uq.musicfm.config import MusicFMConfig
from mer_uq.musicfm.embedding import (
    DEFAULT_LAYER,
    PRECISIONS,
    Precision,
    embed_batch,
    embed_song,
    layer_column,
)
from mer_uq.musicfm.mel import MelFrontEnd, MelStats, htk_mel_filterbank
from mer_uq.musicfm.model import MusicFM

__all__ = [
    "DEFAULT_LAYER",
    "PRECISIONS",
    "CheckpointError",
    "MelFrontEnd",
    "MelStats",
    "MusicFM",
    "MusicFMConfig",
    "Precision",
    "checkpoint_layout",
    "embed_batch",
    "embed_song",
    "htk_mel_filterbank",
    "layer_column",
    "load_musicfm",
    "read_checkpoint",
    "save_checkpoint",
]
