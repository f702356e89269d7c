"""Feature tables: the bundled openSMILE means, multi-column files, row lookup,
train-only standardisation, and bad tables."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mer_uq.data import DeamDataError, load_deam, load_features, save_features, standardise
from mer_uq.data.deam_files import BUNDLED_FEATURES_FILE
from mer_uq.data.features import DEFAULT_COLUMN_KEY, FeatureTable

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _table(ids, matrix, column="features") -> FeatureTable:
    return FeatureTable(np.asarray(ids), np.asarray(matrix, dtype=np.float32), column)


def test_bundled_features_are_the_real_csv():
    """The bundled Parquet holds exactly the values of the real openSMILE CSV (a gzip copy
    of it is a test fixture, its checksum pinned in tests/fixtures/deam/sha256.json)."""
    gz = FIXTURES / "deam" / "opensmile_song_means.csv.gz"
    expected = json.loads((FIXTURES / "deam" / "sha256.json").read_text())
    raw = gzip.decompress(gz.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == expected["features/opensmile_song_means.csv"]
    ft = load_features()
    csv = pd.read_csv(io.BytesIO(raw))
    assert ft.column == "features" and ft.matrix.dtype == np.float32
    assert ft.song_ids.dtype == np.int64 and ft.matrix.shape == (1802, 130)
    np.testing.assert_array_equal(ft.song_ids, csv["song_id"])
    np.testing.assert_array_equal(ft.matrix, csv.drop(columns="song_id").to_numpy(np.float32))
    assert ft.feature_names == list(csv.columns[1:])
    schema = pq.read_schema(BUNDLED_FEATURES_FILE)
    assert pa.types.is_fixed_size_list(schema.field("features").type)
    assert schema.metadata[DEFAULT_COLUMN_KEY.encode()] == b"features"


def test_bundled_features_cover_every_song():
    ds = load_deam(include_2015=True)
    assert load_features().rows(ds.songs["song_id"]).shape == (1802, 130)


def test_save_load_several_columns(tmp_path: Path):
    rng = np.random.default_rng(0)
    ids = np.array([5, 3, 9])
    layers = {f"layer_{i:02d}": rng.standard_normal((3, 4)).astype(np.float32) for i in range(3)}
    path = save_features(
        tmp_path / "f.parquet", ids, layers, default_column="layer_02", metadata={"model": "toy"}
    )
    assert [p.name for p in tmp_path.iterdir()] == ["f.parquet"]
    default = load_features(path)
    assert default.column == "layer_02"
    np.testing.assert_array_equal(default.matrix, layers["layer_02"])
    chosen = load_features(path, column="layer_00")
    np.testing.assert_array_equal(chosen.matrix, layers["layer_00"])
    assert chosen.metadata["mer_uq.model"] == "toy"
    with pytest.raises(DeamDataError, match=r"no vector column 'layer_07'.*layer_00"):
        load_features(path, column="layer_07")


def test_rows_in_requested_order_and_missing_named():
    ft = _table([10, 20, 30], np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(ft.rows([30, 10]), [[4, 5], [0, 1]])
    with pytest.raises(DeamDataError, match=r"no row for song id\(s\) 40, 50"):
        ft.rows([10, 50, 40])


def test_standardise_uses_training_songs_only():
    rng = np.random.default_rng(1)
    matrix = rng.normal(3.0, 2.0, (40, 3)).astype(np.float32)
    matrix[:, 2] = 7.0  # constant column
    ft = _table(np.arange(40), matrix)
    train = np.arange(0, 40, 2)
    out = standardise(ft, train)
    ref = matrix[train].astype(np.float64)
    expected = (matrix[:, :2] - ref[:, :2].mean(0)) / ref[:, :2].std(0)
    np.testing.assert_allclose(out.matrix[:, :2], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.matrix[:, 2], 0.0)
    assert np.all(np.isfinite(out.matrix))
    np.testing.assert_allclose(out.rows(train)[:, :2].mean(0), 0.0, atol=1e-6)
    assert abs(out.rows(np.arange(1, 40, 2))[:, 0].mean()) > 1e-3  # test songs not re-centred


def test_nan_features_named(tmp_path: Path):
    matrix = np.ones((4, 2), dtype=np.float32)
    matrix[1, 0], matrix[3, 1] = np.nan, np.inf
    table = pa.table(
        {
            "song_id": pa.array([2, 3, 4, 5], pa.int64()),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), 2),
        }
    )
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(
        DeamDataError, match=r"bad\.parquet.*NaN or inf features for song id\(s\) 3, 5"
    ):
        load_features(tmp_path / "bad.parquet")
    with pytest.raises(DeamDataError, match=r"NaN or inf features for song id\(s\) 3, 5"):
        save_features(tmp_path / "out.parquet", [2, 3, 4, 5], {"features": matrix})
    assert not (tmp_path / "out.parquet").exists()


def test_duplicate_song_id_named(tmp_path: Path):
    table = pa.table(
        {
            "song_id": pa.array([2, 7, 7], pa.int64()),
            "features": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(6, np.float32)), 2),
        }
    )
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(DeamDataError, match=r"dup\.parquet.*duplicate song id\(s\) 7"):
        load_features(tmp_path / "dup.parquet")


def test_missing_file_and_columns_named(tmp_path: Path):
    with pytest.raises(DeamDataError, match=r"feature file not found: .*none\.parquet"):
        load_features(tmp_path / "none.parquet")
    pq.write_table(pa.table({"id": [1], "x": [1.0]}), tmp_path / "noid.parquet")
    with pytest.raises(DeamDataError, match=r"noid\.parquet: no 'song_id' column"):
        load_features(tmp_path / "noid.parquet")
    vec = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(2, np.float32)), 1)
    pq.write_table(pa.table({"song_id": [1, 2], "a": vec, "b": vec}), tmp_path / "two.parquet")
    with pytest.raises(DeamDataError, match=r"2 vector columns \(a, b\).*--feature-column"):
        load_features(tmp_path / "two.parquet")
    assert load_features(tmp_path / "two.parquet", column="b").matrix.shape == (2, 1)


def test_string_and_ragged_columns_are_named_with_their_types(tmp_path: Path):
    ragged = pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32()))
    pq.write_table(pa.table({"song_id": [1, 2], "emb": ragged, "tag": ["x", "y"]}),
                   tmp_path / "ragged.parquet")
    with pytest.raises(DeamDataError, match=r"no vector column .*columns found: emb \(list<"
                                            r"element: float>\), tag \(string\)"):
        load_features(tmp_path / "ragged.parquet")
    vec = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(2, np.float32)), 1)
    pq.write_table(pa.table({"song_id": [1, 2], "a": vec, "tag": ["x", "y"]}),
                   tmp_path / "mixed.parquet")
    with pytest.raises(DeamDataError, match=r"'tag' is not a vector column.*tag \(string\)"
                                            r".*vector columns: a; choose one with "
                                            r"--feature-column"):
        load_features(tmp_path / "mixed.parquet", column="tag")


def test_feature_names_metadata_roundtrip(tmp_path: Path):
    names = ["f0", "rms"]
    path = save_features(
        tmp_path / "n.parquet",
        [1],
        {"features": np.ones((1, 2))},
        metadata={"mer_uq.feature_names": json.dumps(names)},
    )
    assert load_features(path).feature_names == names
