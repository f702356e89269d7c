"""Reading and writing MusicFM checkpoints in the released layout, strictly.

The released file (pretrained_msd.pt) is a Lightning-style ``{"state_dict": {"model.<key>":
tensor}}``. Loading checks the full key set and every shape against what the config implies
and reports ALL problems in one error, because a partial load of a foundation model gives
plausible-looking but meaningless embeddings. Weight-norm tensors may use the legacy names
(``weight_g``/``weight_v``) or the parametrization names; both are accepted.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mer_uq.musicfm.config import MusicFMConfig
from mer_uq.musicfm.mel import MelStats
from mer_uq.musicfm.model import MusicFM
from mer_uq.sweep_folder import write_atomically

MODEL_PREFIX = "model."
MEL_PREFIX = "preprocessor_melspec_2048.mel_stft."
# Checkpoint key -> key of MusicFM's state dict, where the names differ.
RENAMED_KEYS = {
    f"{MEL_PREFIX}spectrogram.window": "mel.window",
    f"{MEL_PREFIX}mel_scale.fb": "mel.filterbank",
}
LEGACY_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0",
                      "weight_v": "parametrizations.weight.original1"}

# How many keys of each kind an error message lists before summarising the rest.
SHOWN_KEYS = 20

Layout = dict[str, tuple[tuple[int, ...], torch.dtype]]


class CheckpointError(ValueError):
    """A checkpoint file that does not fit the configured MusicFM model."""


def ignored_key_layout(config: MusicFMConfig) -> Layout:
    """Checkpoint tensors that embedding does not use, with the shapes the config implies:
    the BEST-RQ quantizers, the token-prediction head, the cls token and the conformer's
    convolutional position embedding (built but never called by the rotary encoder)."""
    f32 = torch.float32
    dim, kernel = config.encoder_dim, config.num_conv_pos_embeddings
    layout: Layout = {"cls_token": ((dim,), f32)}
    for i in range(config.num_codebooks):
        quantizer = f"quantizer_melspec_2048_{i}"
        layout[f"{quantizer}.random_projection"] = ((config.n_mels * 4, config.codebook_dim), f32)
        layout[f"{quantizer}.codebook"] = ((config.codebook_size, config.codebook_dim), f32)
    pos_conv = "conformer.pos_conv_embed.conv"
    layout[f"{pos_conv}.bias"] = ((dim,), f32)
    layout[f"{pos_conv}.parametrizations.weight.original0"] = ((1, 1, kernel), f32)
    layout[f"{pos_conv}.parametrizations.weight.original1"] = (
        (dim, dim // config.num_conv_pos_embedding_groups, kernel), f32)
    layout["linear.weight"] = ((config.codebook_size * config.num_codebooks, dim), f32)
    layout["linear.bias"] = ((config.codebook_size * config.num_codebooks,), f32)
    return layout


def _module_to_checkpoint_key(key: str) -> str:
    inverse = {v: k for k, v in RENAMED_KEYS.items()}
    return inverse.get(key, key)


def checkpoint_layout(config: MusicFMConfig) -> Layout:
    """Every key (``model.`` prefix removed, modern weight-norm names) with shape and dtype
    that a checkpoint for this config must contain. Built on the meta device, so asking for
    the full-size layout allocates nothing."""
    with torch.device("meta"):
        model = MusicFM(config, MelStats(mean=0.0, std=1.0))
    layout: Layout = {
        _module_to_checkpoint_key(k): (tuple(v.shape), v.dtype)
        for k, v in model.state_dict().items()
    }
    layout.update(ignored_key_layout(config))
    return layout


def _canonical_key(key: str) -> str:
    head, _, last = key.rpartition(".")
    if last in LEGACY_WEIGHT_NORM:
        return f"{head}.{LEGACY_WEIGHT_NORM[last]}"
    return key


def _legacy_key(key: str) -> str:
    """Inverse of ``_canonical_key``: parametrization names -> weight_g/weight_v."""
    for legacy, modern in LEGACY_WEIGHT_NORM.items():
        if key.endswith(f".{modern}"):
            return f"{key[: -len(modern)]}{legacy}"
    return key


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a released-layout file, ``model.`` stripped, weight-norm names made
    canonical. Raises CheckpointError naming the file for anything that is not that layout."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{path}: checkpoint file not found") from err
    except Exception as err:  # unpickling errors have no common base class
        raise CheckpointError(f"{path}: not a loadable torch checkpoint ({err})") from err
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        found = sorted(payload)[:5] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path}: expected a Lightning-style dict {{'state_dict': {{'model.<key>': "
            f"tensor}}}} as released with MusicFM; found {found}"
        )
    state = payload["state_dict"]
    unprefixed = sorted(k for k in state if not k.startswith(MODEL_PREFIX))
    if unprefixed:
        raise CheckpointError(
            f"{path}: {len(unprefixed)} state_dict keys lack the '{MODEL_PREFIX}' prefix: "
            f"{unprefixed[:10]}"
        )
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = _canonical_key(key[len(MODEL_PREFIX):])
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: {key} is a {type(value).__name__}, not a tensor")
        if name in tensors:
            raise CheckpointError(f"{path}: {key} given twice (legacy and new weight-norm name)")
        tensors[name] = value
    return tensors


def _shortlist(items: list[str]) -> str:
    """The first SHOWN_KEYS items one per line; a 12-layer mismatch lists hundreds."""
    shown = "\n    ".join(items[:SHOWN_KEYS])
    more = f"\n    ... and {len(items) - SHOWN_KEYS} more" if len(items) > SHOWN_KEYS else ""
    return f"\n    {shown}{more}"


def check_layout(tensors: dict[str, torch.Tensor], config: MusicFMConfig, source: str) -> None:
    """Raise one CheckpointError listing missing keys, unexpected keys and shape mismatches."""
    expected = checkpoint_layout(config)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {expected[k][0]}"
        for k in set(expected) & set(tensors)
        if tuple(tensors[k].shape) != expected[k][0]
    )
    if missing or unexpected or mismatched:
        parts = [
            f"{label} ({len(items)}): {_shortlist(items)}"
            for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                 ("shape mismatches", mismatched))
            if items
        ]
        raise CheckpointError(
            f"{source} does not fit the MusicFM config (encoder_dim={config.encoder_dim}, "
            f"encoder_depth={config.encoder_depth}, conv_dim={config.conv_dim}; pass the "
            "model's config JSON if it is not the full-size model):\n  " + "\n  ".join(parts)
        )


def load_musicfm(
    checkpoint: str | Path,
    stats: str | Path | MelStats,
    config: MusicFMConfig | None = None,
    device: str | torch.device = "cpu",
) -> MusicFM:
    """A MusicFM in eval mode with the checkpoint's weights (strictly matched).

    ``config`` defaults to the full-size MusicFM-MSD sizes; ``stats`` is msd_stats.json (or
    already-read MelStats).
    """
    config = config or MusicFMConfig()
    mel_stats = stats if isinstance(stats, MelStats) else MelStats.from_json(stats)
    tensors = read_checkpoint(checkpoint)
    check_layout(tensors, config, source=str(checkpoint))
    model = MusicFM(config, mel_stats)
    used = {RENAMED_KEYS.get(k, k): v for k, v in tensors.items()
            if k not in ignored_key_layout(config)}
    model.load_state_dict(used, strict=True)
    return model.to(device).eval()


def save_checkpoint(model: MusicFM, path: str | Path, *, legacy_weight_norm: bool = True,
                    seed: int = 0) -> None:
    """Write ``model`` in the released layout, atomically.

    The tensors embedding ignores get seeded random values of the right shapes, so the file
    is a complete checkpoint that ``load_musicfm`` (or upstream) accepts strictly. Used to
    make tiny test checkpoints and full-size random ones for benchmarks. By default the
    weight-norm tensors get the legacy names, as in the 2023 release.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {_module_to_checkpoint_key(k): v.detach().cpu().clone()
             for k, v in model.state_dict().items()}
    for key, (shape, dtype) in ignored_key_layout(model.config).items():
        state[key] = torch.randn(shape, generator=generator).to(dtype)
    rename = _legacy_key if legacy_weight_norm else (lambda key: key)
    payload = {"state_dict": {MODEL_PREFIX + rename(k): v for k, v in state.items()}}
    write_atomically(Path(path), lambda tmp: torch.save(payload, tmp))
