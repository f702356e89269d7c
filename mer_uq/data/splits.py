"""Train/valid/test split stratified by genre, fixed by a seed, kept in a CSV file.

Per genre (in sorted order, so the random stream is reproducible) the songs are shuffled
with one numpy Generator seeded once, and cut into 70/15/15 by the largest-remainder rule:
each split gets the floor of its share, and the songs left over go to the splits with the
largest fractional parts. Every split's count per genre is therefore within 1 of its exact
share. The file is the authority: once written, a split is read back rather than redrawn,
so a change of this algorithm cannot silently move songs between splits.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from mer_uq.data.errors import DeamDataError, format_ids
from mer_uq.data.genres import genre_names
from mer_uq.schema import SPLITS
from mer_uq.sweep_folder import write_atomically

DEFAULT_FRACTIONS: tuple[float, ...] = (0.70, 0.15, 0.15)
DEFAULT_SEED = 0


def split_counts(n: int, fractions: tuple[float, ...] = DEFAULT_FRACTIONS) -> np.ndarray:
    """Songs per split for a stratum of n songs (largest remainder; ties go to the
    earlier split)."""
    exact = n * np.asarray(fractions, dtype=float) / sum(fractions)
    counts = np.floor(exact + 1e-9).astype(np.int64)
    leftover = n - counts.sum()
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:leftover]] += 1
    return counts


def make_split(
    genres: pd.Series,
    seed: int = DEFAULT_SEED,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
) -> pd.DataFrame:
    """song_id, split for songs given as a Series genre indexed by song_id."""
    if len(fractions) != len(SPLITS):
        raise DeamDataError(f"fractions {fractions} must give one share per split {SPLITS}")
    rng = np.random.default_rng(seed)
    parts = []
    for genre in genre_names(genres.to_numpy()):
        songs = np.sort(genres.index[genres.to_numpy() == genre].to_numpy(np.int64))
        shuffled = rng.permutation(songs)
        labels = np.repeat(np.array(SPLITS, dtype=object), split_counts(len(songs), fractions))
        parts.append(pd.DataFrame({"song_id": shuffled, "split": labels}))
    out = pd.concat(parts, ignore_index=True).sort_values("song_id", ignore_index=True)
    out["split"] = out["split"].astype(str)
    return out


def write_split(split: pd.DataFrame, path: Path | str) -> Path:
    """Write song_id,split (sorted by song id) atomically."""
    frame = split[["song_id", "split"]].sort_values("song_id")
    text = frame.to_csv(index=False, lineterminator="\n")
    return write_atomically(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_split(path: Path | str, song_ids: np.ndarray | None = None) -> pd.DataFrame:
    """Read and validate a split file; with ``song_ids``, require it to cover exactly
    those songs."""
    path = Path(path)
    if not path.is_file():
        raise DeamDataError(f"split file not found: {path}")
    try:
        frame = pd.read_csv(
            io.StringIO(path.read_text(encoding="utf-8")), dtype=str, skipinitialspace=True
        )
    except (OSError, ValueError) as exc:
        raise DeamDataError(f"{path}: cannot read split CSV ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing_cols = [c for c in ("song_id", "split") if c not in frame.columns]
    if missing_cols:
        raise DeamDataError(f"{path}: missing column(s) {missing_cols}")
    ids = pd.to_numeric(frame["song_id"].str.strip(), errors="coerce")
    bad = np.flatnonzero(ids.isna().to_numpy() | (ids != ids.round()).to_numpy())
    if bad.size:
        raise DeamDataError(f"{path}, line {bad[0] + 2}: song_id {frame['song_id'].iat[bad[0]]!r}")
    labels = frame["split"].str.strip()
    bad = np.flatnonzero(~labels.isin(SPLITS).to_numpy())
    if bad.size:
        raise DeamDataError(
            f"{path}, line {bad[0] + 2}: split {labels.iat[bad[0]]!r} is not one of {SPLITS}"
        )
    out = pd.DataFrame({"song_id": ids.to_numpy(np.int64), "split": labels.to_numpy(str)})
    dup = out["song_id"][out["song_id"].duplicated()].unique()
    if dup.size:
        raise DeamDataError(f"{path}: duplicate song id(s) {format_ids(np.sort(dup))}")
    if song_ids is not None:
        known = np.asarray(song_ids, dtype=np.int64)
        unknown = np.setdiff1d(out["song_id"].to_numpy(), known)
        if unknown.size:
            raise DeamDataError(
                f"{path}: unknown song id(s) not in the dataset: {format_ids(unknown)}"
            )
        absent = np.setdiff1d(known, out["song_id"].to_numpy())
        if absent.size:
            raise DeamDataError(f"{path}: no split for song id(s) {format_ids(absent)}")
    return out.sort_values("song_id", ignore_index=True)
