"""Primary genre rule and the metadata reader's tolerance of the real files' quirks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mer_uq.data import DeamDataError, load_deam
from mer_uq.data.genres import OTHER, merge_rare, primary_genre
from mer_uq.data.readers import read_metadata_genres


@pytest.mark.parametrize(
    "cell, genre",
    [
        ("\tBlues\t", "Blues"),
        ("SoulRB-Country-Folk-Pop", "SoulRB"),
        ("Hip-Hop-Electronic", "Hip-Hop"),
        ("Electronic-Hip-Hop", "Electronic"),
        ("rock", "Rock"),
        ("hiphop", "Hip-Hop"),
        ("rap", "Hip-Hop"),
        ("Singer/Songwriter", "Singer/Songwriter"),
        ("n/a", "Unknown"),
    ],
)
def test_primary_genre(cell: str, genre: str):
    assert primary_genre(cell) == genre


def test_merge_rare():
    genres = pd.Series(["Rock"] * 5 + ["Jazz"] * 2 + ["Unknown"] * 3)
    assert merge_rare(genres, min_songs=3).tolist() == ["Rock"] * 5 + [OTHER] * 5


def test_real_genres(real_deam: Path):
    """2014 songs were sampled about 100 per first-listed genre; 2013 has one genre each."""
    songs = load_deam(real_deam).songs
    counts = songs[songs["year"] == 2014]["genre"].value_counts().to_dict()
    assert counts["Hip-Hop"] == 100 and counts["Rock"] == 100 and counts["Folk"] == 99
    assert counts["SoulRB"] + counts["Blues"] == 100
    assert songs.set_index("song_id").at[1459, "genre"] == OTHER  # shifted row: 'Bird of Youth'
    assert songs["genre"].value_counts()[OTHER] == 1


def test_official_header_variants_and_ragged_rows(tmp_path: Path):
    path = tmp_path / "metadata_2014.csv"
    path.write_text(
        "Id,Artist,Album,Track,genre,,\n"
        '1001,"\tSome Band\t",X,"\tT\t","\tHip-Hop-Rock\t",tag,tag2,tag3,tag4\n'
        "1002,A,B,C,Jazz\n"
    )
    genres = read_metadata_genres(path)
    assert genres.to_dict() == {1001: "Hip-Hop-Rock", 1002: "Jazz"}


def test_metadata_without_genre_column_named(tmp_path: Path):
    path = tmp_path / "metadata_2013.csv"
    path.write_text("song_id,artist,style\n2,A,Blues\n")
    with pytest.raises(DeamDataError, match=r"metadata_2013\.csv: no genre column"):
        read_metadata_genres(path)


def test_metadata_short_row_named(tmp_path: Path):
    path = tmp_path / "metadata_2013.csv"
    path.write_text("song_id,artist,Genre\n2,A,Blues\n3,B\n")
    with pytest.raises(DeamDataError, match=r"metadata_2013\.csv, line 3: 2 cells"):
        read_metadata_genres(path)
