"""The Ray Data graph of ``sweep.embed``: audio files -> decoded 45 s stereo -> pooled
vectors of MusicFM or of a local transformers model (the model is the spec's ``load``).

Decoding runs as light CPU tasks so it overlaps inference; inference runs in an actor pool
so that each worker loads the (1.3 GB) checkpoint once and keeps it on its device. A file
that fails to decode travels on as a row with an ``error`` string and a silent placeholder
waveform (one shape for every row keeps the tensor column simple); the actor skips it and
the driver lists it in the errors file, so one bad file never stops the rest.

The pool starts whole: no song is handed out before all ``workers`` actors have loaded
their model (``ACTOR_START_TIMEOUT_S``). Otherwise the actor that loads first, usually the
one next to the driver, takes every song that arrives while the others, on nodes that
pull the checkpoint over the network, are still loading, and a cluster's GPU nodes idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from mer_uq.audio import TARGET_SECONDS
from mer_uq.musicfm import MusicFMConfig, Precision, embed_batch, load_musicfm
from sweep.embed_decode import DECODE_CPUS, DECODE_MEMORY_BYTES, decode_row

# How long the actor pool may take to start (module doc): room for an autoscaler to add GPU
# nodes and for each actor to load the 1.3 GB checkpoint. Past it, Ray Data raises
# GetTimeoutError (the cluster cannot hold ``workers`` actors); sweep.embed reports it.
ACTOR_START_TIMEOUT_S = 900


@dataclass(frozen=True)
class ModelSpec:
    """What an actor needs to build MusicFM: plain paths and numbers, cheap to ship.

    Every model spec of the pipeline has ``sample_rate`` (what the decode step resamples
    to) and ``load(device)``, which returns an object with ``embed(audio) -> [songs,
    states, dim]`` and ``dim``; sweep.embed_hf.HFModelSpec is the other one."""

    checkpoint: str
    stats: str
    config: MusicFMConfig
    layers: tuple[int, ...]
    precision: Precision
    torch_threads: int

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def load(self, device: str) -> _MusicFMRunner:
        return _MusicFMRunner(load_musicfm(self.checkpoint, self.stats, self.config,
                                           device=device), self.precision)


class _MusicFMRunner:
    def __init__(self, model: Any, precision: Precision) -> None:
        self.model, self.precision = model, precision
        self.dim = model.config.encoder_dim

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return embed_batch(self.model, audio, self.precision)


class PooledEmbedder:
    """Actor: loads its model once (the spec's ``load``), then turns batches of decoded
    songs into pooled vectors.

    Output per batch: ``song_id``, ``path``, ``error``, ``vectors`` [songs, layers, dim]
    (NaN for the rows that failed to decode) and ``node_ip``, the node that embedded them
    (on a cluster, the record of where each song ran).
    """

    def __init__(self, spec: Any) -> None:
        torch.set_num_threads(spec.torch_threads)
        device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
        self.runner = spec.load(device)
        self.layers = list(spec.layers)
        self.node_ip = ray.util.get_node_ip_address()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        errors = np.asarray(batch["error"]).astype(str)
        ok = errors == ""
        vectors = np.full((len(errors), len(self.layers), self.runner.dim), np.nan, np.float32)
        if ok.any():
            pooled = self.runner.embed(np.asarray(batch["audio"])[ok])
            vectors[ok] = pooled[:, self.layers]
        return {
            "song_id": np.asarray(batch["song_id"], dtype=np.int64),
            "path": np.asarray(batch["path"]).astype(str),
            "error": errors,
            "vectors": vectors,
            "node_ip": np.full(len(errors), self.node_ip),
        }


MusicFMEmbedder = PooledEmbedder  # the name it had when MusicFM was the only model


@dataclass(frozen=True)
class Resources:
    """Ray resources of the actor pool."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    batch_size: int


def build_dataset(
    songs: list[tuple[int, Path]], spec: Any, resources: Resources
) -> ray.data.Dataset:
    """Lazy dataset of embedded songs; nothing runs until the driver iterates it.
    ``spec``: ModelSpec (MusicFM) or sweep.embed_hf.HFModelSpec."""
    items = [{"song_id": song_id, "path": str(path)} for song_id, path in songs]
    # One block per song: each decode task then holds a single 8.6 MB waveform, and Ray Data
    # can stream songs to the actors as soon as they are decoded.
    files = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    decoded = files.map(
        decode_row,
        fn_kwargs={"sample_rate": spec.sample_rate, "seconds": TARGET_SECONDS},
        num_cpus=DECODE_CPUS,
        memory=DECODE_MEMORY_BYTES,
    )
    embedded = decoded.map_batches(
        PooledEmbedder,
        fn_constructor_kwargs={"spec": spec},
        compute=ray.data.ActorPoolStrategy(size=resources.workers),
        num_cpus=resources.cpus_per_worker,
        num_gpus=resources.gpus_per_worker,
        batch_size=resources.batch_size,
        batch_format="numpy",
    )
    # The chain's own DataContext (from_items copied the driver's), so nothing global changes.
    embedded.context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
    return embedded
