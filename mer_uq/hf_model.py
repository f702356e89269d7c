"""Any transformers audio model (wav2vec2, HuBERT, AST, MERT, ...) as a frozen feature
extractor, loaded from a local folder only.

The paper's discussion suspects that the foundation model discards rater-spread
information; testing that needs other representations than MusicFM's, embedded exactly the
same way: every hidden state (``hidden_states[0]`` = the embedding front end .. the last
layer) averaged over time and channels, one vector per song and layer. Both stereo channels
go through the model as separate batch items, as for MusicFM (mer_uq.musicfm.embedding).

What "time" is depends on the model: frames for wav2vec2 / HuBERT / MERT, every token of
the patch sequence (the [CLS] and distillation tokens included) for AST. The model's own
feature extractor prepares the input (normalisation, or AST's filterbank with its fixed
``max_length`` frames: AST sees the first ~10 s of each 45 s excerpt unless that folder's
extractor says otherwise).

Nothing is downloaded (``local_files_only``). A model whose code is not part of
transformers (MERT) needs ``trust_remote_code``: that runs Python files from the folder, so
it is refused unless the caller asks for it explicitly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


class HFModelError(ValueError):
    """A folder that is not a usable local transformers audio model (one line)."""


@dataclass(frozen=True)
class HFModelInfo:
    """What the driver learns from the folder's configuration files, without the weights."""

    folder: str
    model_type: str
    n_hidden_states: int
    hidden_size: int
    sample_rate: int
    config: dict[str, Any]
    feature_extractor: dict[str, Any]
    weights_sha256: str


def _loading_error(folder: Path, err: Exception) -> HFModelError:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "trust_remote_code" in str(err):
        return HFModelError(f"--hf-model {folder}: its code is not part of transformers and "
                            "would run Python files from that folder; pass "
                            "--trust-remote-code to allow that")
    return HFModelError(f"--hf-model {folder}: not a loadable transformers audio model "
                        f"({type(err).__name__}: {text})")


def weights_sha256(folder: Path) -> str:
    """One digest over the folder's weight files (name and content), so a table records
    which weights made it and a rerun with other weights is refused."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise HFModelError(f"--hf-model {folder}: no weight file ({', '.join(WEIGHT_SUFFIXES)})")
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda h=handle: h.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def describe_hf_model(folder: Path, trust_remote_code: bool = False) -> HFModelInfo:
    """Read the folder's model and feature-extractor configurations (cheap: no weights).
    Raises HFModelError naming the folder when either is missing or unusable."""
    from transformers import AutoConfig, AutoFeatureExtractor

    folder = Path(folder)
    if not folder.is_dir():
        raise HFModelError(f"--hf-model {folder}: not a folder")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True,
                                            trust_remote_code=trust_remote_code)
        extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True,
                                                         trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        raise _loading_error(folder, err) from err
    layers = getattr(config, "num_hidden_layers", None)
    rate = getattr(extractor, "sampling_rate", None)
    if layers is None or rate is None:
        raise HFModelError(f"--hf-model {folder}: needs num_hidden_layers in config.json and "
                           "sampling_rate in preprocessor_config.json")
    return HFModelInfo(folder=str(folder.resolve()), model_type=str(config.model_type),
                       n_hidden_states=int(layers) + 1, hidden_size=int(config.hidden_size),
                       sample_rate=int(rate), config=config.to_dict(),
                       feature_extractor=extractor.to_dict(),
                       weights_sha256=weights_sha256(folder))


class HFAudioEmbedder:
    """A loaded model and its feature extractor; ``embed`` pools every hidden state."""

    def __init__(self, folder: str | Path, trust_remote_code: bool = False,
                 device: str = "cpu") -> None:
        import torch
        from transformers import AutoFeatureExtractor, AutoModel

        folder = Path(folder)
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(
                folder, local_files_only=True, trust_remote_code=trust_remote_code)
            self.model = AutoModel.from_pretrained(folder, local_files_only=True,
                                                   trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as err:
            raise _loading_error(folder, err) from err
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.sample_rate = int(self.extractor.sampling_rate)

    def embed(self, waveforms: np.ndarray) -> np.ndarray:
        """[songs, channels, samples] float audio at ``sample_rate`` -> [songs, states, dim]
        (fp32): each hidden state averaged over time and channels."""
        import torch

        waveforms = np.ascontiguousarray(waveforms, dtype=np.float32)
        if waveforms.ndim != 3:
            raise ValueError(f"waveforms must be [songs, channels, samples], got "
                             f"{waveforms.shape}")
        songs, channels, _ = waveforms.shape
        flat = [w for song in waveforms for w in song]
        inputs = self.extractor(flat, sampling_rate=self.sample_rate, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if hasattr(v, "to")}
        with torch.inference_mode():
            states = self.model(**inputs, output_hidden_states=True).hidden_states
        pooled = [s.float().reshape(songs, channels, s.shape[1], s.shape[2]).mean(dim=(1, 2))
                  for s in states]
        return torch.stack(pooled, dim=1).cpu().numpy()
