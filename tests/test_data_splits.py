"""Genre-stratified 70/15/15 split: sizes per genre, determinism, the shipped file, and
bad split files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_uq.data import DeamDataError, load_deam
from mer_uq.data.deam_files import BUNDLED_SPLIT_FILE
from mer_uq.data.splits import make_split, read_split, split_counts, write_split
from mer_uq.schema import SPLITS

SHARES = dict(zip(SPLITS, (0.70, 0.15, 0.15), strict=True))


@pytest.fixture(scope="module")
def real(real_deam: Path):
    return load_deam(real_deam)


@pytest.fixture(scope="module")
def genres(real) -> pd.Series:
    return real.songs.set_index("song_id")["genre"]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 13, 87, 100, 216, 1744])
def test_split_counts_within_one_of_shares(n: int):
    counts = split_counts(n)
    assert counts.sum() == n
    exact = n * np.array(list(SHARES.values()))
    assert np.all(np.abs(counts - exact) < 1)


def test_sizes_per_genre_within_one(genres: pd.Series):
    split = make_split(genres, seed=0).set_index("song_id")["split"]
    table = pd.crosstab(genres, split.loc[genres.index])
    for genre, row in table.iterrows():
        n = row.sum()
        for name, share in SHARES.items():
            assert abs(row.get(name, 0) - share * n) < 1, (genre, name)


def test_split_is_deterministic_and_seed_dependent(genres: pd.Series):
    a, b, c = make_split(genres, seed=0), make_split(genres, seed=0), make_split(genres, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert (a["split"] != c["split"]).sum() > 100
    assert a["split"].value_counts().to_dict() == c["split"].value_counts().to_dict()


def test_shipped_split_is_seed_0_and_used_by_default(real, genres: pd.Series):
    shipped = read_split(BUNDLED_SPLIT_FILE, genres.index.to_numpy())
    pd.testing.assert_frame_equal(shipped, make_split(genres, seed=0))
    assert real.split_source == str(BUNDLED_SPLIT_FILE)
    np.testing.assert_array_equal(real.songs["split"], shipped["split"])
    assert real.songs["split"].value_counts().to_dict() == {
        "train": 1219,
        "valid": 264,
        "test": 261,
    }


def test_write_read_roundtrip_and_custom_file(genres: pd.Series, tmp_path: Path, real_deam):
    path = write_split(make_split(genres, seed=7), tmp_path / "sub" / "split.csv")
    assert path.read_text().splitlines()[0] == "song_id,split"
    assert not [p for p in path.parent.iterdir() if p.name != "split.csv"]  # no temp left
    ds = load_deam(real_deam, split_file=path)
    assert ds.split_source == str(path)
    pd.testing.assert_frame_equal(ds.songs[["song_id", "split"]], make_split(genres, seed=7))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "split.csv"
    path.write_text(text)
    return path


def test_unknown_songs_named(genres: pd.Series, tmp_path: Path, real_deam):
    frame = make_split(genres, seed=0)
    extra = pd.DataFrame({"song_id": [5000, 5001], "split": ["train", "test"]})
    path = write_split(pd.concat([frame, extra]), tmp_path / "split.csv")
    with pytest.raises(DeamDataError, match=r"split\.csv: unknown song id\(s\).*5000, 5001"):
        load_deam(real_deam, split_file=path)


def test_missing_songs_named(genres: pd.Series, tmp_path: Path):
    frame = make_split(genres, seed=0)
    path = write_split(frame[~frame["song_id"].isin([2, 1999])], tmp_path / "split.csv")
    with pytest.raises(DeamDataError, match=r"no split for song id\(s\) 2, 1999"):
        read_split(path, genres.index.to_numpy())


@pytest.mark.parametrize(
    "text, message",
    [
        ("song_id,split\n2,train\n3,holdout\n", r"line 3: split 'holdout' is not one of"),
        ("song_id,split\n2,train\n2,test\n", r"duplicate song id\(s\) 2"),
        ("song,split\n2,train\n", r"missing column\(s\) \['song_id'\]"),
        ("song_id,split\n2,train\nabc,test\n", r"line 3: song_id 'abc'"),
    ],
)
def test_bad_split_file(tmp_path: Path, text: str, message: str):
    with pytest.raises(DeamDataError, match=message):
        read_split(_write(tmp_path, text))


def test_missing_split_file(tmp_path: Path):
    with pytest.raises(DeamDataError, match=r"split file not found: .*nope\.csv"):
        read_split(tmp_path / "nope.csv")
