"""What ``sweep.embed`` writes: the feature table (merged with earlier runs) and the errors
file.

Reruns must be cheap and safe: songs already in FEATURES are skipped, new ones are merged in,
and a table written by a different checkpoint, config or layer set is refused, because
silently mixing two models' vectors in one column would corrupt every result downstream.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mer_uq.data.features import SOURCE_KEY, load_features, save_features
from mer_uq.musicfm import layer_column
from mer_uq.sweep_folder import write_atomically

PROVENANCE_KEY = "mer_uq.musicfm"
# Table metadata: JSON {song_id: IP of the Ray node that embedded it}. Kept apart from the
# provenance because it may differ between runs that are safe to merge.
NODES_KEY = "mer_uq.embed_nodes"
SOURCE = "musicfm"
# Provenance fields that must agree between the stored table and this run to merge.
MUST_MATCH = ("config", "checkpoint_sha256", "mel_stats", "layers", "audio", "precision",
              "feature_extractor")


class EmbedOutputError(ValueError):
    """FEATURES exists but cannot be extended by this run."""


@dataclass
class FeatureRows:
    """Pooled vectors by song: song_id -> [layers, dim], and the node that embedded each
    (song_id -> node IP; absent for songs of tables written before it was recorded)."""

    layers: tuple[int, ...]
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    nodes: dict[int, str] = field(default_factory=dict)

    def add(self, song_id: int, vector: np.ndarray, node_ip: str | None = None) -> None:
        self.vectors[int(song_id)] = np.asarray(vector, dtype=np.float32)
        if node_ip is not None:
            self.nodes[int(song_id)] = node_ip

    def __len__(self) -> int:
        return len(self.vectors)


def errors_path(features: Path) -> Path:
    """The errors file lives next to FEATURES: ``<stem>.errors.csv``."""
    return features.with_name(f"{features.stem}.errors.csv")


def read_existing(features: Path, provenance: dict[str, Any],
                  provenance_key: str = PROVENANCE_KEY) -> FeatureRows:
    """The songs already embedded in FEATURES (empty when the file does not exist).
    ``provenance_key``: the metadata key of this kind of model's provenance."""
    layers = tuple(provenance["layers"])
    rows = FeatureRows(layers=layers)
    if not features.exists():
        return rows
    first = load_features(features, column=layer_column(layers[0]))
    stored_raw = first.metadata.get(provenance_key)
    if stored_raw is None:
        raise EmbedOutputError(
            f"{features}: exists but has no {provenance_key!r} metadata (not written by "
            "sweep.embed with this kind of model); choose another --out"
        )
    stored = json.loads(stored_raw)
    differing = [k for k in MUST_MATCH if stored.get(k) != provenance.get(k)]
    if differing:
        details = "; ".join(f"{k}: stored {stored.get(k)!r} vs now {provenance.get(k)!r}"
                            for k in differing)
        raise EmbedOutputError(
            f"{features}: was written with a different {', '.join(differing)} ({details}); "
            "merging would mix two models' features: choose another --out"
        )
    columns = [first.matrix] + [
        load_features(features, column=layer_column(layer)).matrix for layer in layers[1:]
    ]
    stacked = np.stack(columns, axis=1)
    nodes = json.loads(first.metadata.get(NODES_KEY, "{}"))
    for song_id, vector in zip(first.song_ids, stacked, strict=True):
        rows.add(int(song_id), vector, node_ip=nodes.get(str(int(song_id))))
    return rows


def embedding_nodes(features: Path) -> dict[int, str]:
    """song_id -> IP of the Ray node that embedded it, from FEATURES' metadata."""
    table = load_features(features)
    return {int(k): v for k, v in json.loads(table.metadata.get(NODES_KEY, "{}")).items()}


def write_features(
    features: Path, rows: FeatureRows, provenance: dict[str, Any], default_layer: int,
    provenance_key: str = PROVENANCE_KEY, source: str = SOURCE,
) -> Path:
    """Write all rows, sorted by song_id, atomically, via the shared feature-table format."""
    song_ids = np.array(sorted(rows.vectors), dtype=np.int64)
    stacked = np.stack([rows.vectors[int(s)] for s in song_ids])  # [songs, layers, dim]
    vectors = {layer_column(layer): stacked[:, i] for i, layer in enumerate(rows.layers)}
    return save_features(
        features,
        song_ids,
        vectors,
        default_column=layer_column(default_layer),
        metadata={provenance_key: json.dumps(provenance, sort_keys=True), SOURCE_KEY: source,
                  NODES_KEY: json.dumps({str(s): rows.nodes[s] for s in sorted(rows.nodes)})},
    )


def write_errors(path: Path, errors: list[dict[str, str]]) -> Path:
    """CSV of the files that failed this run (song_id, path, error); header only if none."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["song_id", "path", "error"])
            writer.writeheader()
            writer.writerows(sorted(errors, key=lambda e: (e["path"], e["song_id"])))

    return write_atomically(path, write)
