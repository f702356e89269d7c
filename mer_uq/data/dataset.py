"""load_deam: the DEAM folder -> one table of songs and the long per-rater table.

Order of work, and why:
1. read the static averaged and per-rater files, the metadata and (when present) the
   averaged dynamic files, each validated by its reader;
2. audit the valence/arousal swap on the RAW ratings (the audit must see the files as
   published), then correct the swapped subsets in both tables unless ``fix_swap=False``;
3. check our per-rater SDs against the averaged file (same swap state on both sides);
4. normalise with h(r) = (r - 5) / 5 and compute each song's mean, population SD and
   rater count from the per-rater table;
5. attach year, primary genre and split.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mer_uq.data.deam_files import BUNDLED_SPLIT_FILE, DeamFiles, resolve_files
from mer_uq.data.errors import DeamDataError, format_ids
from mer_uq.data.genres import primary_genres
from mer_uq.data.readers import (
    read_dynamic_song_means,
    read_metadata_genres,
    read_per_rater,
    read_static_averaged,
)
from mer_uq.data.splits import DEFAULT_SEED, make_split, read_split
from mer_uq.data.swap import SwapAudit, audit_swap, swap_columns, year_of
from mer_uq.data.targets import AveragedFileCheck, check_against_averaged, normalise, song_targets
from mer_uq.schema import DIMENSIONS, SPLITS

SONG_COLUMNS = (
    "song_id",
    "year",
    "genre",
    "split",
    *(f"{d}_{s}" for d in DIMENSIONS for s in ("mean", "sd")),
    "n_raters",
)
RATING_COLUMNS = ("song_id", "rater", *DIMENSIONS)


@dataclass(frozen=True)
class DeamDataset:
    """The loaded study data (see docs/architecture.md for the column contract)."""

    songs: pd.DataFrame
    ratings: pd.DataFrame
    swap: SwapAudit
    averaged_check: AveragedFileCheck
    split_source: str
    deam_dir: Path

    def song_ids(self, split: str) -> np.ndarray:
        """Song ids of one split, ascending."""
        if split not in SPLITS:
            raise DeamDataError(f"unknown split {split!r}; expected one of {SPLITS}")
        return self.songs.loc[self.songs["split"] == split, "song_id"].to_numpy(np.int64)


def _concat_unique(frames: list[pd.DataFrame], paths: tuple[Path, ...], what: str) -> pd.DataFrame:
    """Concatenate per-file tables keyed by song_id; a song in two files is an error."""
    for i, frame in enumerate(frames):
        for j in range(i):
            dup = np.intersect1d(frame["song_id"], frames[j]["song_id"])
            if dup.size:
                raise DeamDataError(
                    f"duplicate song id(s) {format_ids(dup)} in both {paths[j]} and "
                    f"{paths[i]} ({what})"
                )
    return pd.concat(frames, ignore_index=True)


def _read_annotations(files: DeamFiles) -> tuple[pd.DataFrame, pd.DataFrame]:
    averaged = _concat_unique(
        [read_static_averaged(p) for p in files.static_averaged],
        files.static_averaged,
        "averaged annotations",
    )
    parts = []
    for path in files.static_per_rater:
        part = read_per_rater(path)
        part["file"] = str(path)
        parts.append(part)
    ratings = pd.concat(parts, ignore_index=True)
    unrated = np.setdiff1d(averaged["song_id"], ratings["song_id"])
    if unrated.size:
        rated_in = ", ".join(str(p) for p in files.static_per_rater)
        raise DeamDataError(
            f"song(s) {format_ids(unrated)} of the averaged annotations have no per-rater "
            f"ratings in {rated_in}"
        )
    orphans = np.setdiff1d(ratings["song_id"], averaged["song_id"])
    if orphans.size:
        first = ratings[ratings["song_id"] == orphans[0]].iloc[0]
        raise DeamDataError(
            f"{first['file']}, line {first['line']}: song(s) {format_ids(orphans)} have ratings "
            f"but no row in the averaged file(s)"
        )
    return averaged, ratings


def _dynamic_means(files: DeamFiles) -> pd.DataFrame | None:
    if files.dynamic is None:
        return None
    series = {dim: read_dynamic_song_means(path) for dim, path in files.dynamic.items()}
    return pd.DataFrame(series).dropna().rename_axis("song_id").reset_index()


def _genres(files: DeamFiles, song_ids: np.ndarray) -> pd.Series:
    cells = [read_metadata_genres(p) for p in files.metadata]
    frames = [c.rename("genre").reset_index() for c in cells]
    table = _concat_unique(frames, files.metadata, "metadata").set_index("song_id")["genre"]
    missing = np.setdiff1d(song_ids, table.index.to_numpy())
    if missing.size:
        raise DeamDataError(
            f"song(s) {format_ids(missing)} have no row in the metadata files "
            f"{[str(p) for p in files.metadata]}"
        )
    return primary_genres(table.loc[song_ids])


def _split(genres: pd.Series, split_file: Path | str | None) -> tuple[pd.Series, str]:
    """Split per song. None means the default split: the bundled file when it covers
    exactly these songs (the default data set), else the same rule drawn with seed 0."""
    song_ids = genres.index.to_numpy(np.int64)
    if split_file is not None:
        split = read_split(split_file, song_ids)
        source = str(split_file)
    else:
        bundled = read_split(BUNDLED_SPLIT_FILE) if BUNDLED_SPLIT_FILE.is_file() else None
        if bundled is not None and np.array_equal(bundled["song_id"].to_numpy(), np.sort(song_ids)):
            split, source = bundled, str(BUNDLED_SPLIT_FILE)
        else:
            split, source = make_split(genres, seed=DEFAULT_SEED), f"drawn with seed {DEFAULT_SEED}"
    return split.set_index("song_id")["split"], source


def _correct_swap(
    raw: pd.DataFrame, averaged: pd.DataFrame, subsets: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exchange valence and arousal for the songs of the swapped year subsets, in the
    per-rater table and in the averaged table alike."""
    years = [int(s) for s in subsets]
    valence, arousal = DIMENSIONS
    raw = swap_columns(
        raw, np.isin(year_of(raw["song_id"].to_numpy()), years), [(valence, arousal)]
    )
    pairs = [(f"{valence}_{stat}", f"{arousal}_{stat}") for stat in ("mean", "std")]
    in_years = np.isin(year_of(averaged["song_id"].to_numpy()), years)
    return raw, swap_columns(averaged, in_years, pairs)


def load_deam(
    deam_dir: Path | str | None = None,
    include_2015: bool = False,
    fix_swap: bool = True,
    split_file: Path | str | None = None,
) -> DeamDataset:
    """Load DEAM's static annotations as the study uses them (docs/data.md)."""
    files = resolve_files(deam_dir, include_2015)
    averaged, raw = _read_annotations(files)

    raw_means = raw.groupby("song_id", sort=True)[list(DIMENSIONS)].mean().reset_index()
    audit = audit_swap(raw_means, _dynamic_means(files), corrected=False)
    if fix_swap and audit.detected:
        raw, averaged = _correct_swap(raw, averaged, audit.swapped_subsets)
        audit = replace(audit, corrected=True)
    check = check_against_averaged(raw, averaged)

    ratings = raw.sort_values(["song_id", "line"], kind="stable", ignore_index=True)
    ratings = ratings.assign(**{d: normalise(ratings[d].astype(float)) for d in DIMENSIONS})
    ratings = ratings[list(RATING_COLUMNS)].astype({"song_id": np.int64, "rater": str})

    songs = song_targets(ratings)
    song_ids = songs["song_id"].to_numpy(np.int64)
    genres = _genres(files, song_ids)
    split, source = _split(genres, split_file)
    songs["year"] = year_of(song_ids)
    songs["genre"] = genres.loc[song_ids].to_numpy(str)
    songs["split"] = split.loc[song_ids].to_numpy(str)
    songs = songs[list(SONG_COLUMNS)].astype({"song_id": np.int64, "n_raters": np.int64})
    return DeamDataset(
        songs=songs,
        ratings=ratings,
        swap=audit,
        averaged_check=check,
        split_source=source,
        deam_dir=files.root,
    )
