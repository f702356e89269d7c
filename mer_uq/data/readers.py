"""Readers for the DEAM CSV files as they really are, quirks included.

The real files disagree on header spelling (``song_id``/``SongId``/``Id``/``id``,
``Genre``/``genre``, leading spaces, ``Valence`` vs ``Valence_Average``), pad metadata
cells with tabs and spaces, and carry ragged metadata rows with dozens of unnamed tag
columns. Each reader matches headers by a normalised key (lower case, no spaces or
underscores) and returns a tidy frame with our own column names, or raises
DeamDataError naming the file, line and column at fault.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mer_uq.data.errors import DeamDataError
from mer_uq.schema import DIMENSIONS

RATING_MIN, RATING_MAX = 1.0, 9.0

# Our column name -> header spellings found in DEAM releases (after header_key()).
SONG_ID_HEADERS = ("songid", "id")
RATER_HEADERS = ("workerid",)
GENRE_HEADERS = ("genre",)
PER_RATER_HEADERS = {
    "valence": ("valence", "valenceaverage"),
    "arousal": ("arousal", "arousalaverage"),
}
AVERAGED_HEADERS = {
    **{f"{d}_mean": (f"{d}mean",) for d in DIMENSIONS},
    **{f"{d}_std": (f"{d}std", f"{d}sd") for d in DIMENSIONS},
}


def header_key(name: str) -> str:
    """The spelling-insensitive key a header is matched by."""
    return "".join(ch for ch in name.lower() if ch not in " \t_")


def _find_column(header: list[str], aliases: tuple[str, ...], path: Path, what: str) -> int:
    keys = [header_key(h) for h in header]
    for alias in aliases:
        if alias in keys:
            return keys.index(alias)
    raise DeamDataError(
        f"{path}: no {what} column (looked for headers {list(aliases)} ignoring case, "
        f"spaces and underscores; found {[h.strip() for h in header if h.strip()]})"
    )


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of a CSV, cells stripped of padding. The csv
    module, not pandas, so that ragged rows parse and line numbers are exact."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DeamDataError(f"{path}: file is empty")
            rows = [
                (reader.line_num, cells)
                for cells in ([c.strip() for c in row] for row in reader)
                if any(cells)  # blank or comma-only lines carry nothing
            ]
    except (OSError, csv.Error) as exc:
        raise DeamDataError(f"{path}: cannot read CSV ({exc})") from exc
    return header, rows


def _select(
    path: Path, columns: Mapping[str, tuple[str, ...]]
) -> tuple[list[int], dict[str, list[str]]]:
    """Line numbers and the named columns (as strings) of a CSV."""
    header, rows = _read_rows(path)
    index = {name: _find_column(header, aliases, path, name) for name, aliases in columns.items()}
    width = max(index.values()) + 1
    for line, cells in rows:
        if len(cells) < width:
            raise DeamDataError(f"{path}, line {line}: {len(cells)} cells, expected >= {width}")
    lines = [line for line, _ in rows]
    return lines, {name: [cells[i] for _, cells in rows] for name, i in index.items()}


def _numbers(path: Path, lines: list[int], column: str, cells: list[str]) -> np.ndarray:
    values = pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = bad[0]
        raise DeamDataError(f"{path}, line {lines[i]}: {column} is {cells[i]!r}, not a number")
    return values


def _song_ids(path: Path, lines: list[int], cells: list[str]) -> np.ndarray:
    values = _numbers(path, lines, "song id", cells)
    bad = np.flatnonzero(values != np.round(values))
    if bad.size:
        i = bad[0]
        raise DeamDataError(f"{path}, line {lines[i]}: song id {cells[i]!r} is not an integer")
    return values.astype(np.int64)


def _reject_duplicates(path: Path, lines: list[int], song_ids: np.ndarray) -> None:
    seen: dict[int, int] = {}
    for line, song in zip(lines, song_ids.tolist(), strict=True):
        if song in seen:
            raise DeamDataError(
                f"{path}, line {line}: duplicate song id {song} (first on line {seen[song]})"
            )
        seen[song] = line


def read_static_averaged(path: Path) -> pd.DataFrame:
    """Per-song mean and SD on the raw 1..9 scale: song_id, {dim}_mean, {dim}_std."""
    lines, cols = _select(path, {"song_id": SONG_ID_HEADERS, **AVERAGED_HEADERS})
    song_ids = _song_ids(path, lines, cols.pop("song_id"))
    _reject_duplicates(path, lines, song_ids)
    frame = pd.DataFrame({"song_id": song_ids})
    for name, cells in cols.items():
        frame[name] = _numbers(path, lines, name, cells)
    return frame


def read_per_rater(path: Path) -> pd.DataFrame:
    """One row per rating on the raw 1..9 scale: song_id, rater, valence, arousal, line.

    A rating outside 1..9 is an error naming its line: normalising it would silently
    produce a target outside (-1, 1)."""
    columns = {"song_id": SONG_ID_HEADERS, "rater": RATER_HEADERS, **PER_RATER_HEADERS}
    lines, cols = _select(path, columns)
    frame = pd.DataFrame(
        {"song_id": _song_ids(path, lines, cols["song_id"]), "rater": cols["rater"]}
    )
    for dim in DIMENSIONS:
        values = _numbers(path, lines, dim, cols[dim])
        bad = np.flatnonzero((values < RATING_MIN) | (values > RATING_MAX))
        if bad.size:
            i = bad[0]
            raise DeamDataError(
                f"{path}, line {lines[i]}: {dim} rating {cols[dim][i]} outside 1..9 "
                f"(song {frame['song_id'].iat[i]})"
            )
        frame[dim] = values
    frame["line"] = np.asarray(lines, dtype=np.int64)
    return frame


def read_dynamic_song_means(path: Path) -> pd.Series:
    """Per-song mean of the averaged per-second annotations (scale -1..1), indexed by
    song id. Rows are ragged because excerpts differ in length; empty cells are skipped."""
    try:
        frame = pd.read_csv(path, skipinitialspace=True, low_memory=False)
    except (OSError, ValueError) as exc:
        raise DeamDataError(f"{path}: cannot read CSV ({exc})") from exc
    header = [str(c) for c in frame.columns]
    id_col = header[_find_column(header, SONG_ID_HEADERS, path, "song id")]
    lines = list(range(2, len(frame) + 2))
    song_ids = _song_ids(path, lines, frame[id_col].astype(str).tolist())
    _reject_duplicates(path, lines, song_ids)
    values = frame.drop(columns=id_col)
    text_columns = [c for c, t in values.dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
    if text_columns:
        name = text_columns[0]
        cells = values[name].astype(str).str.strip()
        parsed = pd.to_numeric(cells, errors="coerce")
        row = int(np.flatnonzero(parsed.isna() & values[name].notna())[0])
        raise DeamDataError(
            f"{path}, line {row + 2}: column {name!r} is {cells.iat[row]!r}, not a number"
        )
    numeric = values.to_numpy(float)
    counts = np.isfinite(numeric).sum(axis=1)
    if (counts == 0).any():
        song = song_ids[np.flatnonzero(counts == 0)[0]]
        raise DeamDataError(f"{path}: song {song} has no dynamic annotation values")
    means = np.nansum(numeric, axis=1) / counts
    return pd.Series(means, index=pd.Index(song_ids, name="song_id"), name=path.stem)


def read_metadata_genres(path: Path) -> pd.Series:
    """The raw genre cell per song id (the primary-genre rule is applied elsewhere).

    Ragged rows are fine: only the id and genre columns named in the header are read."""
    lines, cols = _select(path, {"song_id": SONG_ID_HEADERS, "genre": GENRE_HEADERS})
    song_ids = _song_ids(path, lines, cols["song_id"])
    _reject_duplicates(path, lines, song_ids)
    return pd.Series(cols["genre"], index=pd.Index(song_ids, name="song_id"), name="genre")
