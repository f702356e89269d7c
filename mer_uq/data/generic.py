"""Any per-rater dataset -> the same DeamDataset the DEAM loader gives.

A study is not tied to DEAM: what it needs is a long table of individual ratings
(``song_id, rater, valence, arousal``), the rating scale (min, max, neutral point), and
optionally one genre per song for the stratified split. This module reads that generic
format (CSV or Parquet), validates it row by row (one clear message naming file, row and
column), normalises it with the paper's h(r) generalised to the scale, and builds the
per-song targets with the data layer's own ``song_targets``, so everything downstream
(trials, reliability, the report) runs on it unchanged.

Normalisation. The paper maps DEAM's 1..9 scale with h(r) = (r - 5) / 5, which puts the
scale's ends at +-0.8, comfortably inside the tanh head's (-1, 1). For a scale
[min, max] with neutral point n, the same rule is

    h(r) = (r - n) / (1.25 * max(max - n, n - min))

i.e. the end farthest from neutral lands on +-0.8. For DEAM (1, 9, 5) the divisor is
1.25 * 4 = 5 exactly, so the DEAM numbers are reproduced bit for bit.

``export_generic`` writes a loaded dataset back in this format (raw scale); a DEAM copy
exported that way and read back gives the DEAM loader's targets and split (tested).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer_uq.data.dataset import RATING_COLUMNS, SONG_COLUMNS, DeamDataset
from mer_uq.data.errors import DeamDataError, format_ids
from mer_uq.data.genres import OTHER, merge_rare
from mer_uq.data.splits import DEFAULT_SEED, make_split, read_split
from mer_uq.data.swap import SwapAudit
from mer_uq.data.targets import AveragedFileCheck, song_targets
from mer_uq.schema import DIMENSIONS
from mer_uq.sweep_folder import write_atomically

END_POINT = 0.8  # where the scale end farthest from neutral lands (DEAM: h(9) = 0.8)
SCALE_JSON = "scale.json"  # looked for beside the ratings file when no scale is given
RATINGS_TABLE_COLUMNS: tuple[str, ...] = RATING_COLUMNS
SONG_TABLE_COLUMNS: tuple[str, ...] = ("song_id", "genre")  # + optional "year"
MIN_RATINGS_PER_SONG = 2  # an SD (and a split half) needs two ratings
NO_YEAR = 0


@dataclass(frozen=True)
class RatingScale:
    """A rating scale: its ends and its neutral point, on the raw scale."""

    minimum: float
    maximum: float
    neutral: float

    def __post_init__(self) -> None:
        values = (self.minimum, self.maximum, self.neutral)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise DeamDataError(f"rating scale {self.to_dict()}: min, max, neutral must be numbers")
        if not self.minimum < self.maximum:
            raise DeamDataError(f"rating scale {self.to_dict()}: min must be below max")
        if not self.minimum <= self.neutral <= self.maximum:
            raise DeamDataError(f"rating scale {self.to_dict()}: neutral must lie in [min, max]")

    @property
    def divisor(self) -> float:
        """1.25 x the longer side: the farthest end maps to +-0.8 (DEAM: 5)."""
        return (1.0 / END_POINT) * max(self.maximum - self.neutral, self.neutral - self.minimum)

    def normalise(self, raw: np.ndarray | pd.Series) -> np.ndarray | pd.Series:
        """h(r) = (r - neutral) / divisor."""
        return (raw - self.neutral) / self.divisor

    def raw(self, normalised: np.ndarray | pd.Series) -> np.ndarray | pd.Series:
        """The inverse of ``normalise``."""
        return normalised * self.divisor + self.neutral

    def to_dict(self) -> dict[str, float]:
        return {"min": self.minimum, "max": self.maximum, "neutral": self.neutral}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "scale") -> RatingScale:
        """From ``{"min", "max"[, "neutral"]}``; neutral defaults to the midpoint."""
        if not isinstance(values, Mapping):
            raise DeamDataError(f"{source}: expected a JSON object with min, max, neutral")
        unknown = sorted(set(values) - {"min", "max", "neutral"})
        missing = [k for k in ("min", "max") if values.get(k) is None]
        if unknown or missing:
            raise DeamDataError(
                f"{source}: needs keys min, max (and optionally neutral); "
                + (f"missing {missing}" if missing else f"unknown {unknown}")
            )
        try:
            lo, hi = float(values["min"]), float(values["max"])
            mid = float(values["neutral"]) if values.get("neutral") is not None else (lo + hi) / 2
        except (TypeError, ValueError) as err:
            raise DeamDataError(f"{source}: min, max and neutral must be numbers ({err})") from err
        try:
            return cls(lo, hi, mid)
        except DeamDataError as err:
            raise DeamDataError(f"{source}: {err}") from err

    @classmethod
    def from_json(cls, path: Path | str) -> RatingScale:
        path = Path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise DeamDataError(f"scale file {path}: cannot read ({err.strerror})") from err
        except json.JSONDecodeError as err:
            raise DeamDataError(f"scale file {path}: not valid JSON ({err})") from err
        return cls.from_dict(values, str(path))


DEAM_SCALE = RatingScale(1.0, 9.0, 5.0)


def resolve_scale(
    ratings_path: Path | str,
    scale_file: Path | str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    neutral: float | None = None,
) -> RatingScale:
    """The scale from flags, else from ``scale_file``, else from ``scale.json`` beside the
    ratings file; giving both flags and a file is an error (which one would win?)."""
    flags = {"min": minimum, "max": maximum, "neutral": neutral}
    given = {k: v for k, v in flags.items() if v is not None}
    if given and scale_file is not None:
        raise DeamDataError("give the rating scale either as --scale FILE or as --scale-min/"
                            "--scale-max/--scale-neutral, not both")
    if given:
        return RatingScale.from_dict(given, "--scale-min/--scale-max/--scale-neutral")
    beside = Path(ratings_path).parent / SCALE_JSON
    path = Path(scale_file) if scale_file is not None else beside
    if not path.is_file():
        raise DeamDataError(
            f"no rating scale for {ratings_path}: give --scale FILE, or --scale-min and "
            f"--scale-max (and --scale-neutral), or put {SCALE_JSON} beside it"
            + (f" ({path} not found)" if scale_file is not None else "")
        )
    return RatingScale.from_json(path)


# ---------------------------------------------------------------- reading


def _read_table(path: Path, what: str) -> tuple[pd.DataFrame, str, int]:
    """(table as text cells, row word, number of the first data row): CSV rows are named by
    file line (the header is line 1), Parquet rows by position from 1."""
    if not path.is_file():
        raise DeamDataError(f"{what} file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
            frame = frame.astype({c: object for c in frame.columns})
            return frame, "row", 1
        if suffix in (".csv", ".txt", ".gz"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
            # pandas renames a repeated header ('valence' -> 'valence.1'): keep the header
            # as written, so _columns can refuse the clash instead of using one silently
            header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False,
                                 skipinitialspace=True)
            if header.shape[1] == frame.shape[1]:
                frame.columns = [str(c) for c in header.iloc[0]]
            return frame, "line", 2
    except (OSError, ValueError) as err:
        raise DeamDataError(f"{path}: cannot read the {what} table ({err})") from err
    raise DeamDataError(f"{path}: {what} table must be .csv or .parquet, not {suffix!r}")


def _columns(frame: pd.DataFrame, path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Columns matched ignoring case and surrounding spaces; a missing one is named, and
    two headers that match the same name (valence twice, or Valence and valence) are
    refused: which one is meant cannot be guessed."""
    keys = [str(c).strip().lower() for c in frame.columns]
    clashing = sorted({k for k in keys if keys.count(k) > 1})
    if clashing:
        shown = "; ".join(", ".join(repr(str(c)) for c in frame.columns
                                    if str(c).strip().lower() == k) for k in clashing)
        raise DeamDataError(f"{path}: column(s) given more than once (case and spaces "
                            f"ignored): {shown}; keep one of each")
    by_key = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in required if c not in by_key]
    if missing:
        found = [str(c).strip() for c in frame.columns]
        raise DeamDataError(f"{path}: missing column(s) {missing} (found {found})")
    return frame.rename(columns={original: key for key, original in by_key.items()})


def _text(values: pd.Series) -> pd.Series:
    """Each value as stripped text, '' for a missing one. A text column (every CSV column:
    it is read as text) is stripped in one vectorised pass, the same strings as the
    per-value rule, which is a Python call per cell (millions for a large table)."""
    if isinstance(values.dtype, pd.StringDtype):
        return values.str.strip().fillna("")
    return values.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v))
                      else str(v).strip())


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(_text(values).replace("", np.nan), errors="coerce")


def _fail(path: Path, word: str, first: int, index: int, column: str, problem: str) -> None:
    raise DeamDataError(f"{path}, {word} {first + index}, column {column!r}: {problem}")


def _song_ids(frame: pd.DataFrame, path: Path, word: str, first: int) -> np.ndarray:
    ids = _numbers(frame["song_id"])
    bad = np.flatnonzero((ids.isna() | (ids != ids.round())).to_numpy())
    if bad.size:
        _fail(path, word, first, int(bad[0]), "song_id",
              f"{frame['song_id'].iat[bad[0]]!r} is not an integer song id")
    return ids.to_numpy(np.int64)


def read_ratings_table(path: Path | str, scale: RatingScale) -> pd.DataFrame:
    """The long per-rater table, validated and normalised (columns RATING_COLUMNS, file
    order kept within each song, songs ascending)."""
    path = Path(path)
    frame, word, first = _read_table(path, "ratings")
    frame = _columns(frame, path, RATINGS_TABLE_COLUMNS)
    if frame.empty:
        raise DeamDataError(f"{path}: the ratings table has no rows")
    song_ids = _song_ids(frame, path, word, first)
    raters = _text(frame["rater"])
    empty = np.flatnonzero((raters == "").to_numpy())
    if empty.size:
        _fail(path, word, first, int(empty[0]), "rater", "empty rater id")
    out = pd.DataFrame({"song_id": song_ids, "rater": raters.to_numpy(str)})
    for dim in DIMENSIONS:
        values = _numbers(frame[dim])
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            _fail(path, word, first, int(bad[0]), dim,
                  f"{frame[dim].iat[bad[0]]!r} is not a number")
        outside = np.flatnonzero(((values < scale.minimum) | (values > scale.maximum)).to_numpy())
        if outside.size:
            _fail(path, word, first, int(outside[0]), dim,
                  f"{values.iat[outside[0]]:g} is outside the scale "
                  f"{scale.minimum:g}..{scale.maximum:g} (song {song_ids[outside[0]]})")
        out[dim] = scale.normalise(values.to_numpy(np.float64))
    counts = out.groupby("song_id").size()
    few = counts.index[counts < MIN_RATINGS_PER_SONG].to_numpy()
    if few.size:
        raise DeamDataError(
            f"{path}: song(s) {format_ids(few)} have fewer than {MIN_RATINGS_PER_SONG} ratings "
            "(an inter-rater SD needs two)"
        )
    return out.sort_values("song_id", kind="stable", ignore_index=True)


def read_song_table(path: Path | str, rated: np.ndarray) -> pd.DataFrame:
    """song_id, genre, year for exactly the rated songs (sorted by id)."""
    path = Path(path)
    frame, word, first = _read_table(path, "songs")
    frame = _columns(frame, path, SONG_TABLE_COLUMNS)
    song_ids = _song_ids(frame, path, word, first)
    dup = np.unique(song_ids[pd.Series(song_ids).duplicated().to_numpy()])
    if dup.size:
        raise DeamDataError(f"{path}: song id(s) {format_ids(dup)} listed more than once")
    out = pd.DataFrame({"song_id": song_ids, "genre": _text(frame["genre"]).to_numpy(str)})
    if "year" in frame.columns:
        years = _numbers(frame["year"])
        bad = np.flatnonzero((years.isna() | (years != years.round())).to_numpy())
        if bad.size:
            _fail(path, word, first, int(bad[0]), "year",
                  f"{frame['year'].iat[bad[0]]!r} is not a year")
        out["year"] = years.to_numpy(np.int64)
    else:
        out["year"] = NO_YEAR
    unrated = np.setdiff1d(song_ids, rated)
    if unrated.size:
        raise DeamDataError(f"{path}: song(s) {format_ids(unrated)} have no ratings")
    unlisted = np.setdiff1d(rated, song_ids)
    if unlisted.size:
        raise DeamDataError(f"{path}: rated song(s) {format_ids(unlisted)} have no row here")
    return out.sort_values("song_id", ignore_index=True)


def load_generic(
    ratings_path: Path | str,
    scale: RatingScale,
    songs_path: Path | str | None = None,
    split_file: Path | str | None = None,
) -> DeamDataset:
    """A generic per-rater dataset as a DeamDataset (docs/data.md, "Any per-rater dataset").

    Without a song table every song is one stratum (genre ``Other``); rare genres (fewer
    than 20 songs) merge into ``Other`` as for DEAM. Without a split file the split is
    drawn by the data layer's rule with seed 0."""
    ratings = read_ratings_table(ratings_path, scale)
    targets = song_targets(ratings)
    song_ids = targets["song_id"].to_numpy(np.int64)
    if songs_path is not None:
        meta = read_song_table(songs_path, song_ids).set_index("song_id")
        genres = merge_rare(pd.Series(meta["genre"].replace("", OTHER).to_numpy(str),
                                      index=song_ids))
        years = meta["year"].to_numpy(np.int64)
    else:
        genres = pd.Series(OTHER, index=song_ids)
        years = np.full(song_ids.size, NO_YEAR, dtype=np.int64)
    if split_file is not None:
        split = read_split(split_file, song_ids).set_index("song_id")["split"]
        source = str(split_file)
    else:
        split = make_split(genres, seed=DEFAULT_SEED).set_index("song_id")["split"]
        source = f"drawn with seed {DEFAULT_SEED}"
    songs = targets.assign(year=years, genre=genres.loc[song_ids].to_numpy(str),
                           split=split.loc[song_ids].to_numpy(str))
    songs = songs[list(SONG_COLUMNS)].astype({"song_id": np.int64, "n_raters": np.int64})
    return DeamDataset(
        songs=songs,
        ratings=ratings[list(RATING_COLUMNS)],
        swap=SwapAudit(subsets=(), corrected=False),
        averaged_check=AveragedFileCheck(),
        split_source=source,
        deam_dir=Path(ratings_path),
    )


# ---------------------------------------------------------------- writing

RAW_DECIMALS = 9  # undoes the float error of normalise(); ratings on a finer grid survive


def export_generic(
    dataset: DeamDataset, out_dir: Path | str, scale: RatingScale = DEAM_SCALE
) -> dict[str, Path]:
    """Write ``dataset`` in the generic format: ratings.csv (raw scale), songs.csv
    (song_id, genre, year), split.csv and scale.json, each atomically."""
    out_dir = Path(out_dir)
    ratings = dataset.ratings[list(RATING_COLUMNS)].copy()
    for dim in DIMENSIONS:
        ratings[dim] = np.round(scale.raw(ratings[dim].to_numpy(np.float64)), RAW_DECIMALS)
    songs = dataset.songs[["song_id", "genre", "year"]]
    split = dataset.songs[["song_id", "split"]]
    texts = {
        "ratings": ("ratings.csv", ratings.to_csv(index=False, lineterminator="\n")),
        "songs": ("songs.csv", songs.to_csv(index=False, lineterminator="\n")),
        "split": ("split.csv", split.to_csv(index=False, lineterminator="\n")),
        "scale": (SCALE_JSON, json.dumps(scale.to_dict()) + "\n"),
    }
    return {
        key: write_atomically(out_dir / name, lambda tmp, t=text: tmp.write_text(t, "utf-8"))
        for key, (name, text) in texts.items()
    }


def main(argv: list[str] | None = None) -> int:
    """python -m mer_uq.data.generic OUT_DIR: the bundled DEAM copy in the generic format."""
    import argparse

    from mer_uq.data.dataset import load_deam

    parser = argparse.ArgumentParser(
        prog="python -m mer_uq.data.generic",
        description="Export a DEAM folder (default: the bundled copy) as a generic per-rater "
                    "dataset: ratings.csv, songs.csv, split.csv, scale.json.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--deam", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        paths = export_generic(load_deam(args.deam), args.out_dir)
    except DeamDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
