"""The Ray Data graph of ``sweep.embed``: audio files -> decoded 45 s stereo -> pooled
MusicFM vectors.

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
    """What an actor needs to build its model: plain paths and numbers, cheap to ship."""

    checkpoint: str
    stats: str
    config: MusicFMConfig
    layers: tuple[int, ...]
    precision: Precision
    torch_threads: int


class MusicFMEmbedder:
    """Actor: loads MusicFM once, then turns batches of decoded songs into pooled vectors.

    Output per batch: ``song_id``, ``path``, ``error``, ``vectors`` [songs, layers, dim]
    (NaN for the rows that failed to decode) and ``node_ip``, the node that embedded them
    (on a cluster, the record of where each song ran).
    """

    def __init__(self, spec: ModelSpec) -> None:
        torch.set_num_threads(spec.torch_threads)
        device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
        self.model = load_musicfm(spec.checkpoint, spec.stats, spec.config, device=device)
        self.layers = list(spec.layers)
        self.precision = spec.precision
        self.node_ip = ray.util.get_node_ip_address()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        errors = np.asarray(batch["error"]).astype(str)
        ok = errors == ""
        vectors = np.full(
            (len(errors), len(self.layers), self.model.config.encoder_dim), np.nan, np.float32
        )
        if ok.any():
            pooled = embed_batch(self.model, np.asarray(batch["audio"])[ok], self.precision)
            vectors[ok] = pooled[:, self.layers]
        return {
            "song_id": np.asarray(batch["song_id"], dtype=np.int64),
            "path": np.asarray(batch["path"]).astype(str),
            "error": errors,
            "vectors": vectors,
            "node_ip": np.full(len(errors), self.node_ip),
        }


@dataclass(frozen=True)
class Resources:
    """Ray resources of the actor pool."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    batch_size: int


def build_dataset(
    songs: list[tuple[int, Path]], spec: ModelSpec, resources: Resources
) -> ray.data.Dataset:
    """Lazy dataset of embedded songs; nothing runs until the driver iterates it."""
    config = spec.config
    items = [{"song_id": song_id, "path": str(path)} for song_id, path in songs]
    # One block per song: each decode task then holds a single 8.6 MB waveform, and Ray Data
    # can stream songs to the actors as soon as they are decoded.
    files = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    decoded = files.map(
        decode_row,
        fn_kwargs={"sample_rate": config.sample_rate, "seconds": TARGET_SECONDS},
        num_cpus=DECODE_CPUS,
        memory=DECODE_MEMORY_BYTES,
    )
    embedded = decoded.map_batches(
        MusicFMEmbedder,
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
