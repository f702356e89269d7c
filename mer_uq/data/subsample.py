"""The data axes of a study: fewer raters per song, fewer training songs.

The paper leaves open whether its methods fail on the SD for lack of data (too few songs,
too few ratings per song) or because the SD carries no signal. Answering that needs the
same study run on less data, in a controlled dose:

* ``k`` raters per song: the training and validation targets of every song are rebuilt
  from k of its ratings, drawn without replacement (a song with fewer than k keeps all,
  and is counted). Test songs are scored against ALL their ratings (the best truth we
  have) and, separately, against the same k-rating draw.
* a training fraction: a genre-stratified subset of the training split (validation and
  test unchanged).

Both draws are pure functions of (dataset, seed) and NESTED: the k raters of a song are
the first k of one seeded shuffle of its ratings, so the 2 raters of k = 2 are among the
5 of k = 5; likewise the songs of fraction 0.25 are among those of 0.5. Comparisons along
an axis therefore differ by the added data only, not by a fresh random draw. The value of
k or the fraction does not enter the random streams; the seed does, and it is part of the
trial's identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mer_uq.data.dataset import DeamDataset
from mer_uq.data.genres import genre_names
from mer_uq.data.targets import song_targets
from mer_uq.schema import (
    AXIS_RATERS,
    AXIS_SUBSAMPLE_SEED,
    AXIS_TRAIN_FRACTION,
    DIMENSIONS,
    SPLITS,
    TARGET_MEAN,
    TARGET_SD,
)

MIN_RATERS = 2  # one rating has SD 0: nothing to learn a spread from
_RATER_STREAM, _SONG_STREAM = 1, 2  # independent random streams of one subsampling seed


@dataclass(frozen=True)
class DataAxes:
    """One cell of the data grid: ``raters`` per song (None: all) and the share of the
    training split kept, drawn with ``seed``."""

    raters: int | None = None
    train_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.raters is not None and (int(self.raters) != self.raters
                                        or self.raters < MIN_RATERS):
            raise ValueError(f"raters per song must be an integer >= {MIN_RATERS} (or all), "
                             f"got {self.raters}")
        if not (isinstance(self.train_fraction, int | float)
                and 0.0 < self.train_fraction <= 1.0):
            raise ValueError(f"train fraction must lie in (0, 1], got {self.train_fraction}")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"subsample seed must be an integer >= 0, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return {"raters": self.raters, "train_fraction": self.train_fraction,
                "subsample_seed": self.seed}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataAxes:
        raters = values.get("raters")
        return cls(raters=None if raters is None else int(raters),
                   train_fraction=float(values.get("train_fraction", 1.0)),
                   seed=int(values.get("subsample_seed", 0)))

    def columns(self) -> dict[str, float | int]:
        """The prediction-table columns of this cell (NaN raters: all of them)."""
        return {AXIS_RATERS: math.nan if self.raters is None else float(self.raters),
                AXIS_TRAIN_FRACTION: float(self.train_fraction),
                AXIS_SUBSAMPLE_SEED: int(self.seed)}


def rater_ranks(ratings: pd.DataFrame, seed: int) -> np.ndarray:
    """Position of each rating row in a seeded shuffle of its song's ratings (0 = first).
    Keeping ranks < k is the k-rater draw; the same seed gives nested draws for all k."""
    song = ratings["song_id"].to_numpy(np.int64)
    keys = np.random.default_rng([seed, _RATER_STREAM]).random(song.size)
    order = np.lexsort((keys, song))
    ordered = song[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    first_of_row = np.repeat(starts, np.diff(np.r_[starts, song.size]))
    ranks = np.empty(song.size, dtype=np.int64)
    ranks[order] = np.arange(song.size) - first_of_row
    return ranks


def subsample_raters(ratings: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """k ratings per song drawn without replacement (all of a song with fewer); the rows
    keep their order."""
    return ratings.loc[rater_ranks(ratings, seed) < k].reset_index(drop=True)


def stratified_counts(sizes: np.ndarray, fraction: float) -> np.ndarray:
    """Songs kept per stratum: round(fraction x total) in all, shared by largest remainder
    (ties to the earlier stratum), so each stratum is within 1 of its exact share."""
    exact = fraction * sizes.astype(float)
    counts = np.floor(exact + 1e-9).astype(np.int64)
    leftover = int(np.rint(fraction * float(sizes.sum()))) - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:max(leftover, 0)]] += 1
    return np.minimum(counts, sizes)


def train_subset(songs: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Training song ids kept at ``fraction``: per genre (sorted order) one seeded shuffle
    of its training songs, cut at the stratum's count. Ascending ids."""
    train = songs[songs["split"] == "train"]
    if fraction >= 1.0:
        return np.sort(train["song_id"].to_numpy(np.int64))
    rng = np.random.default_rng([seed, _SONG_STREAM])
    genres = genre_names(train["genre"].to_numpy())
    shuffled = [rng.permutation(np.sort(train.loc[train["genre"] == g, "song_id"]
                                        .to_numpy(np.int64))) for g in genres]
    counts = stratified_counts(np.array([s.size for s in shuffled]), fraction)
    kept = np.sort(np.concatenate([s[:c] for s, c in zip(shuffled, counts, strict=True)]))
    if kept.size < 2:
        raise ValueError(f"train fraction {fraction} keeps {kept.size} training song(s); "
                         "need at least 2")
    return kept


def with_ratings(dataset: DeamDataset, ratings: pd.DataFrame) -> DeamDataset:
    """The dataset with its per-song targets (mean, SD, n_raters) rebuilt from ``ratings``
    by the data layer's own song_targets; every other song column is kept."""
    targets = song_targets(ratings).set_index("song_id")
    songs = dataset.songs.copy()
    ids = songs["song_id"].to_numpy(np.int64)
    columns = [*(TARGET_MEAN[d] for d in DIMENSIONS), *(TARGET_SD[d] for d in DIMENSIONS),
               "n_raters"]
    for column in columns:
        songs[column] = targets.loc[ids, column].to_numpy(songs[column].dtype)
    return replace(dataset, songs=songs, ratings=ratings.reset_index(drop=True))


@dataclass(frozen=True)
class AxesCell:
    """What one data-axes trial trains on and is scored against.

    ``trained_on``: the training subset, and k-rater targets for training and validation
    songs, ALL ratings for the test songs (the default scoring). ``k_scored``: the same
    songs with the k-rater draw everywhere, test songs included (the second scoring).
    ``facts``: counts for the trial record (training songs kept, songs with fewer than k
    ratings per split)."""

    axes: DataAxes
    trained_on: DeamDataset
    k_scored: DeamDataset
    facts: dict[str, float]


def apply_axes(dataset: DeamDataset, axes: DataAxes) -> AxesCell:
    """The cell ``axes`` of ``dataset`` (see AxesCell); pure and seeded."""
    kept_train = train_subset(dataset.songs, axes.train_fraction, axes.seed)
    split = dataset.songs["split"].to_numpy(str)
    keep = (split != "train") | np.isin(dataset.songs["song_id"].to_numpy(np.int64), kept_train)
    songs = dataset.songs.loc[keep].reset_index(drop=True)
    in_kept = dataset.ratings["song_id"].isin(songs["song_id"]).to_numpy()
    facts: dict[str, float] = {"data/train_songs": float(kept_train.size)}
    if axes.raters is None:
        base = replace(dataset, songs=songs,
                       ratings=dataset.ratings.loc[in_kept].reset_index(drop=True))
        return AxesCell(axes, base, base, facts)
    within_k = rater_ranks(dataset.ratings, axes.seed) < axes.raters
    test_ids = songs.loc[songs["split"] == "test", "song_id"]
    is_test = dataset.ratings["song_id"].isin(test_ids).to_numpy()
    base = replace(dataset, songs=songs)
    trained_on = with_ratings(base, dataset.ratings.loc[in_kept & (within_k | is_test)])
    k_scored = with_ratings(base, dataset.ratings.loc[in_kept & within_k])
    for name in SPLITS:
        part = songs.loc[songs["split"] == name, "n_raters"]
        facts[f"data/songs_short_of_k/{name}"] = float((part < axes.raters).sum())
    return AxesCell(axes, trained_on, k_scored, facts)
