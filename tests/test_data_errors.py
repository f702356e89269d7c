"""Each kind of bad DEAM input gives one DeamDataError whose message names the culprit
(file, line, column or song), on fabricated copies of the real folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mer_uq.data import DeamDataError, load_deam
from mer_uq.data.deam_files import DYNAMIC_AVERAGED, METADATA, STATIC_AVERAGED, STATIC_PER_RATER

PER_RATER = STATIC_PER_RATER["2013-2014"]
AVERAGED = STATIC_AVERAGED["2013-2014"]


@pytest.fixture
def deam(real_deam: Path, tmp_path: Path) -> Path:
    root = tmp_path / "deam"
    shutil.copytree(real_deam, root, ignore=shutil.ignore_patterns("features"))
    return root


def _edit_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _replace_line(path: Path, line_no: int, text: str) -> None:
    def edit(lines: list[str]) -> list[str]:
        lines[line_no - 1] = text
        return lines

    _edit_lines(path, edit)


def test_missing_folder(tmp_path: Path):
    with pytest.raises(DeamDataError, match=r"DEAM folder not found: .*nowhere"):
        load_deam(tmp_path / "nowhere")


@pytest.mark.parametrize("rel", [PER_RATER, AVERAGED, METADATA[2014]])
def test_missing_file(deam: Path, rel: Path):
    (deam / rel).unlink()
    with pytest.raises(DeamDataError, match=f"DEAM file missing: .*{rel.name}"):
        load_deam(deam)


def test_missing_2015_file_only_when_asked(deam: Path):
    (deam / METADATA[2015]).unlink()
    assert len(load_deam(deam).songs) == 1744
    with pytest.raises(DeamDataError, match=r"DEAM file missing: .*metadata_2015\.csv"):
        load_deam(deam, include_2015=True)


def test_missing_column(deam: Path):
    _replace_line(deam / AVERAGED, 1, "song_id, valence_mean, valence_std, arousal_mean, spread")
    with pytest.raises(
        DeamDataError, match=r"static_annotations_averaged_songs_1_2000\.csv: no arousal_std column"
    ):
        load_deam(deam)


def test_missing_rater_column(deam: Path):
    _replace_line(deam / PER_RATER, 1, "who, SongId, Valence, Arousal")
    with pytest.raises(DeamDataError, match=r"static_annotations_songs_1_2000\.csv: no rater"):
        load_deam(deam)


def test_song_without_ratings(deam: Path):
    _edit_lines(
        deam / PER_RATER, lambda ls: [ls[0]] + [x for x in ls[1:] if x.split(",")[1] != "5"]
    )
    with pytest.raises(
        DeamDataError,
        match=r"song\(s\) 5 of the averaged annotations have no "
        r"per-rater ratings",
    ):
        load_deam(deam)


def test_ratings_for_unknown_song(deam: Path):
    _edit_lines(deam / PER_RATER, lambda ls: [*ls, "abc,1500000,5,5"])
    with pytest.raises(
        DeamDataError,
        match=r"line 17466: song\(s\) 1500000 have ratings but no "
        r"row in the averaged",
    ):
        load_deam(deam)


@pytest.mark.parametrize(
    "value, message", [("10", "outside 1..9"), ("0", "outside 1..9"), ("x", "not a number")]
)
def test_rating_outside_scale(deam: Path, value: str, message: str):
    _replace_line(deam / PER_RATER, 7, f"6010bbc8e7ef4b21fa38f9c3a9754ef3,2,{value},2")
    with pytest.raises(
        DeamDataError,
        match=rf"static_annotations_songs_1_2000\.csv, line 7: "
        rf"valence.*{message}",
    ):
        load_deam(deam)


def test_duplicate_song_in_averaged_file(deam: Path):
    _edit_lines(deam / AVERAGED, lambda ls: [*ls, ls[2]])
    with pytest.raises(DeamDataError, match=r"line 1746: duplicate song id 3 \(first on line 3\)"):
        load_deam(deam)


def test_duplicate_song_across_files(deam: Path):
    late = deam / STATIC_AVERAGED["2015"]
    _edit_lines(late, lambda ls: [*ls, "1500," + ls[1].split(",", 1)[1]])
    with pytest.raises(DeamDataError, match=r"duplicate song id\(s\) 1500 in both"):
        load_deam(deam, include_2015=True)


def test_song_without_metadata(deam: Path):
    _edit_lines(deam / METADATA[2013], lambda ls: [x for x in ls if not x.startswith("7,")])
    with pytest.raises(DeamDataError, match=r"song\(s\) 7 have no row in the metadata"):
        load_deam(deam)


def test_bad_dynamic_value(deam: Path):
    path = deam / DYNAMIC_AVERAGED["arousal"]
    _edit_lines(
        path, lambda ls: [ls[0], ls[1].replace(",", ",oops", 1).replace("oops-", "oops"), *ls[2:]]
    )
    with pytest.raises(
        DeamDataError,
        match=r"arousal\.csv, line 2: column 'sample_15000ms' is "
        r"'oops",
    ):
        load_deam(deam)
