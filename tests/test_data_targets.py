"""Per-song targets keep true ties: equal means (SDs) of integer ratings are equal floats."""

from __future__ import annotations

from fractions import Fraction
from math import sqrt

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mer_uq.data.targets import normalise, song_targets
from mer_uq.schema import TARGET_MEAN, TARGET_SD


def _ratings(seed: int = 0, n_songs: int = 400) -> tuple[pd.DataFrame, list[list[int]]]:
    """Normalised long table of random integer 1..9 ratings, 5-12 raters a song."""
    rng = np.random.default_rng(seed)
    raw = [list(rng.integers(1, 10, size=rng.integers(5, 13))) for _ in range(n_songs)]
    frame = pd.DataFrame({
        "song_id": np.repeat(np.arange(n_songs), [len(r) for r in raw]),
        "valence": normalise(np.concatenate(raw).astype(float)),
        "arousal": normalise(np.concatenate(raw[::-1]).astype(float)),
    })
    return frame, raw


def test_equal_true_statistics_are_equal_floats() -> None:
    frame, raw = _ratings()
    targets = song_targets(frame)
    means = [(Fraction(sum(r), len(r)) - 5) / 5 for r in raw]
    variances = [Fraction(len(r) * sum(v * v for v in r) - sum(r) ** 2, len(r) ** 2) / 25
                 for r in raw]
    ours_mean = targets[TARGET_MEAN["valence"]].to_numpy()
    ours_sd = targets[TARGET_SD["valence"]].to_numpy()
    np.testing.assert_allclose(ours_mean, [float(m) for m in means], atol=1e-15)
    np.testing.assert_allclose(ours_sd, [sqrt(v) for v in variances], atol=1e-15)
    # as many distinct floats as distinct true values: ties are kept ...
    assert np.unique(ours_mean).size == len(set(means))
    assert np.unique(ours_sd).size == len(set(variances))
    # ... which the float aggregation did not (so this test can fail)
    float_mean = frame.groupby("song_id")["valence"].mean().to_numpy()
    assert np.unique(float_mean).size > len(set(means))
    # and Spearman's ranks see the ties: equal true means get one average rank
    ranks = rankdata(ours_mean)
    exact = rankdata([float(m) for m in means])
    np.testing.assert_array_equal(ranks, exact)


def test_non_integer_ratings_are_rounded_to_fixed_decimals() -> None:
    frame = pd.DataFrame({"song_id": [1, 1, 2, 2], "valence": [0.1, 0.2, 0.05, 0.25],
                          "arousal": [0.3, 0.0, 0.15, 0.15]})
    targets = song_targets(frame).set_index("song_id")
    assert targets.at[1, TARGET_MEAN["valence"]] == targets.at[2, TARGET_MEAN["valence"]]
    assert targets.at[1, TARGET_MEAN["arousal"]] == targets.at[2, TARGET_MEAN["arousal"]]
    assert list(targets["n_raters"]) == [2, 2]
