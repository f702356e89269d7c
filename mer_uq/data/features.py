"""Feature tables: one float32 vector per song, stored as Parquet keyed by song_id.

A file holds one or more vector columns (fixed-size lists of float32): the bundled
openSMILE song means use ``features``; MusicFM tables use ``layer_00`` .. ``layer_12``.
The schema metadata key ``mer_uq.default_column`` names the column used when none is
asked for, so a caller never needs to know which extractor wrote the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mer_uq.data.deam_files import BUNDLED_FEATURES_FILE
from mer_uq.data.errors import DeamDataError, format_ids
from mer_uq.schema import SPLITS
from mer_uq.sweep_folder import write_atomically

if TYPE_CHECKING:
    from mer_uq.data.dataset import DeamDataset

DEFAULT_COLUMN_KEY = "mer_uq.default_column"
FEATURE_NAMES_KEY = "mer_uq.feature_names"
SOURCE_KEY = "mer_uq.source"


@dataclass(frozen=True)
class FeatureTable:
    """One vector column of a feature file, as arrays. ``metadata`` is the file's
    ``mer_uq.*`` schema metadata (strings), kept so that provenance travels along."""

    song_ids: np.ndarray
    matrix: np.ndarray
    column: str
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = np.asarray(self.song_ids)
        matrix = np.asarray(self.matrix, dtype=np.float32)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise DeamDataError(f"feature column {self.column!r}: song_ids must be 1-d integers")
        if matrix.ndim != 2 or matrix.shape[0] != ids.shape[0]:
            raise DeamDataError(
                f"feature column {self.column!r}: matrix shape {matrix.shape} does not "
                f"match {ids.shape[0]} song ids"
            )
        object.__setattr__(self, "song_ids", ids.astype(np.int64, copy=False))
        object.__setattr__(self, "matrix", matrix)
        _validate(self.song_ids, self.matrix, self.column)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def feature_names(self) -> list[str] | None:
        raw = self.metadata.get(FEATURE_NAMES_KEY)
        return json.loads(raw) if raw else None

    def rows(self, song_ids: np.ndarray | list[int]) -> np.ndarray:
        """Matrix rows for ``song_ids``, in that order."""
        wanted = np.asarray(song_ids, dtype=np.int64)
        positions = pd.Index(self.song_ids).get_indexer(wanted)  # ids are unique: validated
        if (positions < 0).any():
            missing = np.unique(wanted[positions < 0])
            raise DeamDataError(
                f"feature column {self.column!r} has no row for song id(s) {format_ids(missing)}"
            )
        return self.matrix[positions]


def _validate(song_ids: np.ndarray, matrix: np.ndarray, where: str) -> None:
    uniq, counts = np.unique(song_ids, return_counts=True)
    if (counts > 1).any():
        raise DeamDataError(f"{where}: duplicate song id(s) {format_ids(uniq[counts > 1])}")
    bad_rows = ~np.isfinite(matrix).all(axis=1)
    if bad_rows.any():
        raise DeamDataError(
            f"{where}: NaN or inf features for song id(s) {format_ids(song_ids[bad_rows])}"
        )


def _vector_columns(schema: pa.Schema) -> list[str]:
    return [
        f.name
        for f in schema
        if pa.types.is_fixed_size_list(f.type) and pa.types.is_floating(f.type.value_type)
    ]


def load_features(path: Path | str | None = None, column: str | None = None) -> FeatureTable:
    """Read one vector column of a feature Parquet (None -> the bundled openSMILE means);
    ``column`` None -> the file's ``mer_uq.default_column``, or its only vector column."""
    path = BUNDLED_FEATURES_FILE if path is None else Path(path)
    if not path.is_file():
        raise DeamDataError(f"feature file not found: {path}")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DeamDataError(f"{path}: not a readable Parquet file ({exc})") from exc
    meta = {
        k.decode(): v.decode()
        for k, v in (schema.metadata or {}).items()
        if k.decode().startswith("mer_uq.")
    }
    vectors = _vector_columns(schema)
    if "song_id" not in schema.names:
        raise DeamDataError(f"{path}: no 'song_id' column (columns: {schema.names})")
    found = ", ".join(f"{f.name} ({f.type})" for f in schema if f.name != "song_id")
    if not vectors:
        raise DeamDataError(
            f"{path}: no vector column (a fixed-size list of floats, one row per song); "
            f"columns found: {found or 'none'}"
        )
    if column is None:
        column = meta.get(DEFAULT_COLUMN_KEY) or (vectors[0] if len(vectors) == 1 else None)
        if column is None:
            raise DeamDataError(
                f"{path}: {len(vectors)} vector columns ({', '.join(vectors)}) and no "
                f"{DEFAULT_COLUMN_KEY!r} metadata; choose one with --feature-column NAME"
            )
    if column not in schema.names:
        raise DeamDataError(
            f"{path}: no vector column {column!r}; vector columns: {', '.join(vectors)}; "
            "choose one with --feature-column NAME"
        )
    if column not in vectors:
        raise DeamDataError(
            f"{path}: {column!r} is not a vector column (a fixed-size list of floats); "
            f"columns found: {found}; vector columns: {', '.join(vectors)}; choose one with "
            "--feature-column NAME"
        )
    table = pq.read_table(path, columns=["song_id", column])
    ids = table.column("song_id").to_numpy()
    if not np.issubdtype(ids.dtype, np.integer):
        raise DeamDataError(
            f"{path}: song_id has type {table.schema.field('song_id').type}, expected integers"
        )
    vec = table.column(column).combine_chunks()
    if vec.null_count:
        raise DeamDataError(
            f"{path}: column {column!r} is null for song id(s) "
            f"{format_ids(ids[vec.is_null().to_numpy(zero_copy_only=False)])}"
        )
    width = vec.type.list_size
    flat = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    matrix = flat.reshape(len(ids), width)
    _validate(ids, matrix, f"{path} column {column!r}")
    return FeatureTable(song_ids=ids, matrix=matrix, column=column, metadata=meta)


def save_features(
    path: Path | str,
    song_ids: np.ndarray,
    vectors: Mapping[str, np.ndarray],
    *,
    default_column: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a feature Parquet atomically: ``vectors`` maps column name -> [n, d] matrix
    (stored as fixed-size lists of float32); ``metadata`` keys get the ``mer_uq.`` prefix
    if they lack it."""
    ids = np.asarray(song_ids, dtype=np.int64)
    if not vectors:
        raise DeamDataError(f"{path}: no vector columns to save")
    default_column = default_column or next(iter(vectors))
    if default_column not in vectors:
        raise DeamDataError(f"{path}: default column {default_column!r} not among {list(vectors)}")
    arrays: dict[str, pa.Array] = {"song_id": pa.array(ids, type=pa.int64())}
    for name, matrix in vectors.items():
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise DeamDataError(
                f"{path}: column {name!r} has shape {matrix.shape}, expected ({len(ids)}, d)"
            )
        _validate(ids, matrix, f"{path} column {name!r}")
        arrays[name] = pa.FixedSizeListArray.from_arrays(
            pa.array(matrix.reshape(-1)), matrix.shape[1]
        )
    meta = {k if k.startswith("mer_uq.") else f"mer_uq.{k}": v for k, v in (metadata or {}).items()}
    meta[DEFAULT_COLUMN_KEY] = default_column
    table = pa.table(arrays).replace_schema_metadata(meta)
    return write_atomically(Path(path), lambda tmp: pq.write_table(table, tmp))


def standardise(table: FeatureTable, train_song_ids: np.ndarray) -> FeatureTable:
    """Z-score every song with the mean and SD of the training songs only, so no
    statistic of the validation or test songs leaks into the inputs. A column constant
    over the training songs is only centred (SD taken as 1), not divided by zero."""
    train = table.rows(train_song_ids).astype(np.float64)
    if train.shape[0] < 2:
        raise DeamDataError(f"standardise: need >= 2 training songs, got {train.shape[0]}")
    mean = train.mean(axis=0)
    sd = train.std(axis=0)
    sd[sd <= 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
    matrix = ((table.matrix.astype(np.float64) - mean) / sd).astype(np.float32)
    return replace(
        table,
        matrix=matrix,
        metadata={**table.metadata, "mer_uq.standardised": "train-split z-score"},
    )


def restrict_to_features(
    dataset: DeamDataset, features: FeatureTable
) -> tuple[DeamDataset, dict[str, list[int]]]:
    """The dataset without the songs ``features`` has no row for, and those songs' ids per
    split. For features that failed to decode for a few songs (``--allow-missing-features``):
    the songs leave every split, their ratings too, so every score and ceiling is computed
    on the same covered songs."""
    covered = np.isin(dataset.songs["song_id"].to_numpy(np.int64), features.song_ids)
    dropped = {
        split: sorted(int(i) for i in dataset.songs.loc[
            ~covered & (dataset.songs["split"] == split).to_numpy(), "song_id"])
        for split in SPLITS
    }
    kept = dataset.songs.loc[covered].reset_index(drop=True)
    ratings = dataset.ratings.loc[dataset.ratings["song_id"].isin(kept["song_id"])]
    return replace(dataset, songs=kept, ratings=ratings.reset_index(drop=True)), dropped
