"""DEAM-shaped synthetic data whose per-song rating SD is KNOWN: the positive control.

On DEAM the inter-rater SD is barely reliable, so a method that fails to predict it may be
broken or may face no signal. Here the truth is built in: every song has a latent mean and
a latent SD that are functions of its feature vector, and its ratings are drawn from that
Gaussian by 10 raters on the 1..9 scale (rounded, clipped), then normalised exactly as
DEAM's. `sd_strength` sets how strongly the SD depends on the features (0: a constant SD,
nothing to recover). A method that can recover spread must do so here.

It returns the data layer's own `DeamDataset` and `FeatureTable`, so `run_trial` and
everything downstream run on it unchanged. The latent truth is in the extra song columns
`<dimension>_sd_true` and `<dimension>_mean_true`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mer_uq.data import DeamDataset, FeatureTable, SwapAudit
from mer_uq.data.targets import AveragedFileCheck
from mer_uq.schema import DIMENSIONS, SPLITS, TARGET_MEAN, TARGET_SD

TRUE_MEAN = {d: f"{d}_mean_true" for d in DIMENSIONS}
TRUE_SD = {d: f"{d}_sd_true" for d in DIMENSIONS}
SD_BASE = 0.3  # DEAM's typical normalised SD (1.5 scale points / 5)
SD_RANGE = (0.05, 0.6)  # DEAM's observed range of normalised SDs, roughly
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal(n)
    return v / np.linalg.norm(v)


def make_synthetic(
    n_songs: int = 1744,
    n_features: int = 130,
    n_raters: int = 10,
    sd_strength: float = 1.0,
    seed: int = 0,
) -> tuple[DeamDataset, FeatureTable]:
    """(dataset, features) with latent SD = SD_BASE * exp(0.5 * sd_strength * s), clipped
    to SD_RANGE, where s ~ N(0, 1) is a fixed linear projection of the features (a
    different one per dimension, independent of the mean's)."""
    if n_songs < 20 or n_features < 2 or n_raters < 2:
        raise ValueError("make_synthetic needs n_songs >= 20, n_features >= 2, n_raters >= 2")
    if sd_strength < 0:
        raise ValueError(f"sd_strength must be >= 0, got {sd_strength}")
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_songs, n_features)).astype(np.float32)
    song_ids = np.arange(1, n_songs + 1, dtype=np.int64)
    songs = pd.DataFrame({"song_id": song_ids, "year": 2014, "genre": "synthetic"})
    ratings = pd.DataFrame(
        {
            "song_id": np.repeat(song_ids, n_raters),
            "rater": np.tile([f"r{j}" for j in range(n_raters)], n_songs),
        }
    )
    for dim in DIMENSIONS:
        mean_true = 0.6 * np.tanh(features @ _unit(rng, n_features))
        s = features @ _unit(rng, n_features)
        sd_true = np.clip(SD_BASE * np.exp(0.5 * sd_strength * s), *SD_RANGE)
        raw = 5.0 + 5.0 * (
            mean_true[:, None] + sd_true[:, None] * rng.standard_normal((n_songs, n_raters))
        )
        normalised = (np.clip(np.rint(raw), 1, 9) - 5.0) / 5.0
        ratings[dim] = normalised.reshape(-1)
        songs[TARGET_MEAN[dim]] = normalised.mean(axis=1)
        songs[TARGET_SD[dim]] = normalised.std(axis=1)
        songs[TRUE_MEAN[dim]] = mean_true
        songs[TRUE_SD[dim]] = sd_true
    songs["n_raters"] = n_raters
    cuts = np.cumsum(np.round(np.array(SPLIT_FRACTIONS) * n_songs).astype(int))[:-1]
    order = rng.permutation(n_songs)
    split = np.empty(n_songs, dtype=object)
    for name, part in zip(SPLITS, np.split(order, cuts), strict=True):
        split[part] = name
    songs.insert(3, "split", split)
    dataset = DeamDataset(
        songs=songs,
        ratings=ratings,
        swap=SwapAudit(subsets=(), corrected=False),
        averaged_check=AveragedFileCheck(),
        split_source=f"synthetic (seed {seed})",
        deam_dir=Path("<synthetic>"),
    )
    table = FeatureTable(
        song_ids=song_ids,
        matrix=features,
        column="features",
        metadata={"mer_uq.source": f"synthetic(sd_strength={sd_strength}, seed={seed})"},
    )
    return dataset, table
