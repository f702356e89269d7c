"""load_deam on the real DEAM files (the bundled copy, pinned by checksum): counts, the
column contract, the normalisation and the SD check, against independent recomputations
straight from the CSV files."""

from __future__ import annotations

import csv
import hashlib
import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_uq.data import DeamDataError, load_deam
from mer_uq.data.bundle import BUNDLED_FILES
from mer_uq.data.deam_files import BUNDLED_DEAM_DIR, STATIC_AVERAGED, STATIC_PER_RATER
from mer_uq.schema import DIMENSIONS, SPLITS, TARGET_MEAN, TARGET_SD

FIXTURES = Path(__file__).resolve().parent / "fixtures"

PER_RATER = STATIC_PER_RATER["2013-2014"]
AVERAGED = STATIC_AVERAGED["2013-2014"]
# Songs whose per-rater SDs disagree with DEAM's averaged file (measured; docs/data.md).
SD_MISMATCHED = [1029, 1059, 1064, 1255, 1297, 1320, 1614, 1654, 1968]


@pytest.fixture(scope="module")
def real(real_deam: Path):
    return load_deam(real_deam)


@pytest.fixture(scope="module")
def raw_ratings(real_deam: Path) -> dict[int, list[tuple[float, float]]]:
    """(Valence, Arousal) column values per song, read with the csv module."""
    out: dict[int, list[tuple[float, float]]] = {}
    with open(real_deam / PER_RATER, newline="") as handle:
        rows = csv.reader(handle)
        header = [h.strip() for h in next(rows)]
        iv, ia, isong = header.index("Valence"), header.index("Arousal"), header.index("SongId")
        for row in rows:
            out.setdefault(int(row[isong]), []).append((float(row[iv]), float(row[ia])))
    return out


def test_song_counts(real):
    songs = real.songs
    assert len(songs) == 1744
    assert songs["year"].value_counts().to_dict() == {2013: 744, 2014: 1000}
    assert songs["song_id"].min() == 2 and songs["song_id"].max() == 2000
    assert songs["song_id"].is_monotonic_increasing and songs["song_id"].is_unique
    assert songs["n_raters"].value_counts().to_dict() == {10: 1738, 11: 4, 20: 2}
    assert len(real.ratings) == 17464 == songs["n_raters"].sum()


def test_include_2015_adds_58_songs(real_deam: Path):
    ds = load_deam(real_deam, include_2015=True)
    assert len(ds.songs) == 1802
    late = ds.songs[ds.songs["year"] == 2015]
    assert len(late) == 58 and set(late["n_raters"]) <= {5, 6}
    assert set(ds.songs["split"]) == set(SPLITS)
    assert ds.split_source == "drawn with seed 0"
    assert ds.averaged_check.sd[0].n_equal == 1802 - len(SD_MISMATCHED)


def test_column_contract(real):
    expected = ["song_id", "year", "genre", "split"]
    expected += [c for d in DIMENSIONS for c in (TARGET_MEAN[d], TARGET_SD[d])]
    assert list(real.songs.columns) == [*expected, "n_raters"]
    assert real.songs["song_id"].dtype == np.int64 and real.songs["n_raters"].dtype == np.int64
    assert list(real.ratings.columns) == ["song_id", "rater", *DIMENSIONS]
    assert set(real.songs["split"]) == set(SPLITS)
    for split in SPLITS:
        ids = real.song_ids(split)
        assert ids.dtype == np.int64 and np.all(np.diff(ids) > 0)
    assert sum(len(real.song_ids(s)) for s in SPLITS) == 1744


@pytest.mark.parametrize("song, swapped", [(1001, False), (1500, False), (2, True), (452, True)])
def test_normalised_targets_match_raw_ratings(real, raw_ratings, song, swapped):
    """h(r) = (r - 5) / 5 of the raw ratings; 2013 songs read from the swapped columns."""
    values = raw_ratings[song]
    columns = {"valence": 1 if swapped else 0, "arousal": 0 if swapped else 1}
    row = real.songs.set_index("song_id").loc[song]
    for dim, col in columns.items():
        raw = [v[col] for v in values]
        assert row[TARGET_MEAN[dim]] == pytest.approx((statistics.fmean(raw) - 5) / 5, abs=1e-12)
        assert row[TARGET_SD[dim]] == pytest.approx(statistics.pstdev(raw) / 5, abs=1e-12)
    assert row["n_raters"] == len(values)
    mine = real.ratings[real.ratings["song_id"] == song]
    assert sorted(mine["valence"]) == pytest.approx(
        sorted((v[columns["valence"]] - 5) / 5 for v in values)
    )


def test_ratings_within_normalised_range(real):
    for dim in DIMENSIONS:
        assert real.ratings[dim].between(-0.8, 0.8).all()
        assert real.songs[TARGET_MEAN[dim]].between(-0.8, 0.8).all()


def test_population_sd_matches_averaged_file(real, real_deam: Path):
    """Our SD x 5, rounded to 2 decimals, equals DEAM's averaged SD for every song but the
    nine where that file disagrees with its own per-rater file; ddof=1 would not."""
    averaged = pd.read_csv(real_deam / AVERAGED, skipinitialspace=True)
    averaged.columns = averaged.columns.str.strip()
    averaged = averaged.set_index("song_id").loc[real.songs["song_id"]]
    swapped = averaged.index <= 1000
    songs = real.songs.set_index("song_id")
    mismatched: set[int] = set()
    for dim, other in (("valence", "arousal"), ("arousal", "valence")):
        ref = np.where(swapped, averaged[f"{other}_std"], averaged[f"{dim}_std"])
        ours = np.round(songs[TARGET_SD[dim]].to_numpy() * 5, 2)
        mismatched |= set(songs.index[np.abs(ours - ref) > 0.005 + 1e-9])
    assert sorted(mismatched) == SD_MISMATCHED
    check = real.averaged_check
    assert check.best_ddof == 0
    assert check.sd[0].n_equal == 1744 - len(SD_MISMATCHED)
    assert list(check.sd[0].mismatched_songs) == SD_MISMATCHED
    assert check.sd[0].max_abs_diff == pytest.approx(0.14)
    assert check.sd[1].n_equal < 100


def test_bundled_copy_is_the_real_files():
    """Every bundled file is byte for byte the real DEAM file it was copied from."""
    expected = json.loads((FIXTURES / "deam" / "sha256.json").read_text())
    for rel in map(str, BUNDLED_FILES):
        digest = hashlib.sha256((BUNDLED_DEAM_DIR / rel).read_bytes()).hexdigest()
        assert digest == expected[rel], rel


def test_explicit_folder_equals_default(real):
    """Passing the folder and passing nothing read the same files the same way."""
    bundled = load_deam()
    pd.testing.assert_frame_equal(bundled.songs, real.songs)
    pd.testing.assert_frame_equal(bundled.ratings, real.ratings)


def test_same_inputs_same_tables(real_deam: Path, real):
    again = load_deam(real_deam)
    pd.testing.assert_frame_equal(again.songs, real.songs)


def test_unknown_split_name(real):
    with pytest.raises(DeamDataError, match=r"unknown split 'validation'"):
        real.song_ids("validation")


def test_repeated_worker_ratings_are_kept(real):
    """92 (worker, song) pairs occur twice; DEAM's averaged file counts both ratings."""
    pairs = real.ratings.groupby(["song_id", "rater"]).size()
    assert (pairs == 2).sum() == 92 and pairs.max() == 2
    song45 = real.ratings[real.ratings["song_id"] == 45]
    assert len(song45) == 10 and song45["rater"].nunique() == 9
