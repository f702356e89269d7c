"""The generic per-rater format: a generated dataset, DEAM round-tripped through it, and
one clear line for every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_uq.data import DeamDataError, load_deam
from mer_uq.data.generic import (
    DEAM_SCALE,
    RatingScale,
    export_generic,
    load_generic,
    resolve_scale,
)
from mer_uq.data.splits import split_counts
from mer_uq.data.targets import normalise
from mer_uq.schema import DIMENSIONS

SCALE_0_10 = RatingScale(0.0, 10.0, 5.0)


def generated(tmp_path: Path, n_songs: int = 90, seed: int = 3) -> tuple[Path, Path, pd.DataFrame]:
    """A 0..10 dataset (3-7 raters per song, three genres of 30) as CSV files."""
    rng = np.random.default_rng(seed)
    rows = []
    for song in range(100, 100 + n_songs):
        for j in range(int(rng.integers(3, 8))):
            rows.append({"song_id": song, "rater": f"w{rng.integers(0, 40)}-{j}",
                         "valence": int(rng.integers(0, 11)),
                         "arousal": float(rng.integers(0, 21)) / 2})
    ratings = pd.DataFrame(rows)
    songs = pd.DataFrame({"song_id": np.arange(100, 100 + n_songs),
                          "genre": np.repeat(["Rock", "Jazz", "Folk"], n_songs // 3)})
    ratings.to_csv(tmp_path / "ratings.csv", index=False)
    songs.to_csv(tmp_path / "songs.csv", index=False)
    return tmp_path / "ratings.csv", tmp_path / "songs.csv", ratings


def test_scale_generalises_the_papers_h_exactly() -> None:
    assert DEAM_SCALE.divisor == 5.0
    raw = np.arange(1.0, 10.0)
    np.testing.assert_array_equal(DEAM_SCALE.normalise(raw), normalise(raw))
    assert SCALE_0_10.normalise(np.array([0.0, 10.0])).tolist() == [-0.8, 0.8]
    lopsided = RatingScale(1.0, 7.0, 2.0)  # the far end (7) lands on 0.8
    assert lopsided.normalise(np.array([7.0]))[0] == pytest.approx(0.8)
    assert lopsided.normalise(np.array([1.0]))[0] == pytest.approx(-0.8 / 5)
    assert RatingScale.from_dict({"min": 1, "max": 5}).neutral == 3.0


def test_generated_dataset_targets_and_split(tmp_path: Path) -> None:
    ratings_csv, songs_csv, raw = generated(tmp_path)
    ds = load_generic(ratings_csv, SCALE_0_10, songs_csv)
    # targets against an independent computation on the raw table
    for dim in DIMENSIONS:
        h = (raw[dim] - 5.0) / 6.25
        grouped = h.groupby(raw["song_id"])
        songs = ds.songs.set_index("song_id")
        np.testing.assert_allclose(songs[f"{dim}_mean"], grouped.mean().loc[songs.index],
                                   atol=1e-12)
        np.testing.assert_allclose(songs[f"{dim}_sd"],
                                   grouped.std(ddof=0).loc[songs.index], atol=1e-12)
    assert ds.songs["n_raters"].sum() == len(raw) == len(ds.ratings)
    # stratified split: each genre of 30 songs cut by the data layer's rule
    counts = ds.songs.groupby(["genre", "split"]).size().unstack()
    expected = dict(zip(("train", "valid", "test"), split_counts(30), strict=True))
    for genre in ("Folk", "Jazz", "Rock"):
        assert counts.loc[genre].to_dict() == expected
    assert ds.songs["year"].eq(0).all() and ds.split_source == "drawn with seed 0"
    # Parquet gives the same dataset as CSV
    raw.to_parquet(tmp_path / "ratings.parquet")
    again = load_generic(tmp_path / "ratings.parquet", SCALE_0_10, songs_csv)
    pd.testing.assert_frame_equal(again.songs, ds.songs)
    # no song table: one stratum
    flat = load_generic(ratings_csv, SCALE_0_10)
    assert set(flat.songs["genre"]) == {"Other"}
    assert (flat.songs["split"].value_counts().to_dict()
            == dict(zip(("train", "valid", "test"), split_counts(90), strict=True)))


def test_deam_exported_to_the_generic_format_gives_the_deam_dataset(tmp_path: Path) -> None:
    deam = load_deam()
    paths = export_generic(deam, tmp_path / "deam")
    scale = resolve_scale(paths["ratings"])  # scale.json beside the ratings
    assert scale == DEAM_SCALE
    for split_file in (None, paths["split"]):
        ds = load_generic(paths["ratings"], scale, paths["songs"], split_file)
        pd.testing.assert_frame_equal(ds.ratings, deam.ratings)
        pd.testing.assert_frame_equal(ds.songs, deam.songs)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("song_id,rater,valence,arousal\n1,a,3,4\n1,b,x,4\n",
         "line 3, column 'valence': 'x' is not a number"),
        ("song_id,rater,valence,arousal\n1,a,3,4\n1,b,3,12\n",
         "line 3, column 'arousal': 12 is outside the scale 0..10 (song 1)"),
        ("song_id,rater,valence,arousal\n1.5,a,3,4\n", "line 2, column 'song_id': '1.5'"),
        ("song_id,rater,valence,arousal\n1,a,3,4\n1,,3,4\n", "line 3, column 'rater': empty"),
        ("song_id,rater,valence\n1,a,3\n", "missing column(s) ['arousal']"),
        ("song_id,rater,valence,arousal\n1,a,3,4\n2,a,3,4\n2,b,3,4\n",
         "song(s) 1 have fewer than 2 ratings"),
        ("song_id,rater,valence,arousal\n", "has no rows"),
    ],
)
def test_bad_ratings_file_one_line_naming_file_row_column(tmp_path: Path, body: str,
                                                           message: str) -> None:
    path = write(tmp_path / "r.csv", body)
    with pytest.raises(DeamDataError) as err:
        load_generic(path, SCALE_0_10)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_parquet_row_and_song_table(tmp_path: Path) -> None:
    frame = pd.DataFrame({"song_id": [1, 1, 2, 2], "rater": ["a", "b", "a", "b"],
                          "valence": [1.0, 2.0, np.nan, 3.0], "arousal": [1.0] * 4})
    frame.to_parquet(tmp_path / "r.parquet")
    with pytest.raises(DeamDataError, match=r"r\.parquet, row 3, column 'valence'"):
        load_generic(tmp_path / "r.parquet", SCALE_0_10)
    good = write(tmp_path / "good.csv", "song_id,rater,valence,arousal\n1,a,1,2\n1,b,2,2\n"
                                        "2,a,3,4\n2,b,3,4\n")
    songs = write(tmp_path / "s.csv", "song_id,genre\n1,Rock\n")
    with pytest.raises(DeamDataError, match=r"s\.csv: rated song\(s\) 2 have no row here"):
        load_generic(good, SCALE_0_10, songs)
    songs = write(tmp_path / "s.csv", "song_id,genre,year\n1,Rock,2001\n2,Pop,20x1\n")
    with pytest.raises(DeamDataError, match=r"s\.csv, line 3, column 'year'"):
        load_generic(good, SCALE_0_10, songs)
    with pytest.raises(DeamDataError, match=r"must be \.csv or \.parquet"):
        load_generic(write(tmp_path / "r.xlsx", ""), SCALE_0_10)


def test_scale_sources_and_errors(tmp_path: Path) -> None:
    ratings = write(tmp_path / "r.csv", "song_id,rater,valence,arousal\n")
    with pytest.raises(DeamDataError, match="no rating scale for"):
        resolve_scale(ratings)
    assert resolve_scale(ratings, minimum=1, maximum=7) == RatingScale(1.0, 7.0, 4.0)
    (tmp_path / "scale.json").write_text(json.dumps({"min": 0, "max": 100, "neutral": 50}))
    assert resolve_scale(ratings).divisor == 62.5
    with pytest.raises(DeamDataError, match="not both"):
        resolve_scale(ratings, tmp_path / "scale.json", minimum=1)
    for bad, message in (({"min": 5, "max": 1}, "min must be below max"),
                         ({"min": 1, "max": 9, "neutral": 10}, "neutral must lie"),
                         ({"max": 9}, "missing ['min']"), ({"min": 1, "max": 9, "mid": 5},
                                                           "unknown ['mid']")):
        path = write(tmp_path / "bad.json", json.dumps(bad))
        with pytest.raises(DeamDataError, match=r"bad\.json|rating scale") as err:
            RatingScale.from_json(path)
        assert message in str(err.value)
