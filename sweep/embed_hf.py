"""The transformers model of ``sweep.embed --hf-model DIR``: the pipeline's other model spec.

sweep.embed runs one pipeline (decode, actor pool, resumable table, errors file) for every
model; this module holds only what differs for a local transformers checkpoint: the
driver-side check of the folder (configuration files, no weights loaded), the provenance
stored in the table, and the spec an actor builds its mer_uq.hf_model.HFAudioEmbedder from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import mer_uq
from mer_uq.audio import TARGET_SECONDS
from mer_uq.hf_model import HFAudioEmbedder, HFModelInfo

# Table metadata of a transformers table (a MusicFM table's is sweep.embed_output's).
HF_PROVENANCE_KEY = "mer_uq.hf_model"
HF_SOURCE = "transformers"


@dataclass(frozen=True)
class HFModelSpec:
    """What an actor needs: the folder, the layers, threads (cheap to ship)."""

    folder: str
    sample_rate: int
    layers: tuple[int, ...]
    torch_threads: int
    trust_remote_code: bool = False

    def load(self, device: str) -> _HFRunner:
        return _HFRunner(HFAudioEmbedder(self.folder, self.trust_remote_code, device))


class _HFRunner:
    def __init__(self, embedder: HFAudioEmbedder) -> None:
        self.embedder = embedder
        self.dim = int(embedder.model.config.hidden_size)

    def embed(self, audio: Any) -> Any:
        return self.embedder.embed(audio)


def hf_provenance(info: HFModelInfo, layers: tuple[int, ...]) -> dict[str, Any]:
    """Metadata stored in the table: which model, weights and input processing made it.
    The fields named in sweep.embed_output.MUST_MATCH must agree for a rerun to merge;
    the dict is passed through JSON so that it equals what a rerun reads back (tuples in a
    configuration come back as lists)."""
    return json.loads(json.dumps({
        "model": "transformers",
        "model_type": info.model_type,
        "model_folder": info.folder,
        "config": info.config,
        "feature_extractor": info.feature_extractor,
        "checkpoint_sha256": info.weights_sha256,
        "layers": list(layers),
        "audio": {"sample_rate": info.sample_rate, "seconds": TARGET_SECONDS,
                  "channels": "stereo, mono duplicated",
                  "pooling": "mean over time (every token) and channels"},
        "precision": "fp32",
        "mer_uq_version": mer_uq.__version__,
    }, default=str))
