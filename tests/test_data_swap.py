"""The valence/arousal swap audit: found from the data on the real files, not found on a
fabricated copy where the 2013 columns are put back, fallback without dynamic files."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_uq.data import load_deam
from mer_uq.data.deam_files import DYNAMIC_AVERAGED, STATIC_AVERAGED, STATIC_PER_RATER
from mer_uq.data.swap import METHOD_DYNAMIC, METHOD_FALLBACK, audit_subset, correlation_key
from mer_uq.schema import DIMENSIONS

CROSSED = [correlation_key("valence", "arousal"), correlation_key("arousal", "valence")]
STRAIGHT = [correlation_key("valence", "valence"), correlation_key("arousal", "arousal")]


def _swap_2013_columns(path: Path, pairs: list[tuple[str, str]]) -> None:
    """Rewrite a CSV with each column pair exchanged on rows of songs <= 1000."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header = [h.strip().lower() for h in rows[0]]
    id_col = header.index("songid") if "songid" in header else header.index("song_id")
    for row in rows[1:]:
        if int(row[id_col]) <= 1000:
            for a, b in pairs:
                ia, ib = header.index(a), header.index(b)
                row[ia], row[ib] = row[ib], row[ia]
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


@pytest.fixture(scope="module")
def real(real_deam: Path):
    return load_deam(real_deam)


@pytest.fixture(scope="module")
def unswapped_copy(real_deam: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unswapped") / "deam"
    shutil.copytree(real_deam, root, ignore=shutil.ignore_patterns("features"))
    _swap_2013_columns(root / STATIC_PER_RATER["2013-2014"], [("valence", "arousal")])
    _swap_2013_columns(
        root / STATIC_AVERAGED["2013-2014"],
        [("valence_mean", "arousal_mean"), ("valence_std", "arousal_std")],
    )
    return root


def _dynamic_means(deam: Path) -> pd.DataFrame:
    return pd.DataFrame(
        {
            dim: pd.read_csv(deam / rel, index_col="song_id").mean(axis=1)
            for dim, rel in DYNAMIC_AVERAGED.items()
        }
    )


def test_swap_detected_on_real_data(real):
    audit = real.swap
    assert audit.detected and audit.corrected
    assert audit.subset == "2013" and audit.method == METHOD_DYNAMIC
    c2013, c2014 = audit.correlations["2013"], audit.correlations["2014"]
    assert min(c2013[k] for k in CROSSED) > 0.9 > 0.7 > max(c2013[k] for k in STRAIGHT)
    assert min(c2014[k] for k in STRAIGHT) > 0.9 > 0.7 > max(c2014[k] for k in CROSSED)


def test_audit_correlations_match_pandas(real, real_deam: Path):
    """The audit's crossed 2013 correlation, recomputed here with pandas on the raw
    per-rater means (before correction: static valence = the corrected arousal)."""
    dyn = _dynamic_means(real_deam)
    songs = real.songs.set_index("song_id")
    ids = songs.index[songs.index <= 1000]
    raw_static_valence = songs.loc[ids, "arousal_mean"]
    r = raw_static_valence.corr(dyn.loc[ids, "arousal"])
    assert real.swap.correlations["2013"][correlation_key("valence", "arousal")] == (
        pytest.approx(r, abs=1e-4)
    )


def test_corrected_targets_agree_with_dynamic_annotations(real, real_deam: Path):
    dyn = _dynamic_means(real_deam)
    songs = real.songs.set_index("song_id")
    for year in (2013, 2014):
        ids = songs.index[songs["year"] == year]
        for dim in DIMENSIONS:
            assert songs.loc[ids, f"{dim}_mean"].corr(dyn.loc[ids, dim]) > 0.9


def test_no_fix_swap_keeps_raw_columns(real, real_deam: Path):
    raw = load_deam(real_deam, fix_swap=False)
    assert raw.swap.detected and not raw.swap.corrected
    fixed, kept = real.songs.set_index("song_id"), raw.songs.set_index("song_id")
    early, late = fixed.index <= 1000, fixed.index > 1000
    for stat in ("mean", "sd"):
        np.testing.assert_array_equal(
            kept.loc[early, f"valence_{stat}"], fixed.loc[early, f"arousal_{stat}"]
        )
        np.testing.assert_array_equal(
            kept.loc[late, f"valence_{stat}"], fixed.loc[late, f"valence_{stat}"]
        )


def test_not_detected_on_unswapped_copy(unswapped_copy: Path, real):
    ds = load_deam(unswapped_copy)
    assert not ds.swap.detected and ds.swap.subset is None and not ds.swap.corrected
    c2013 = ds.swap.correlations["2013"]
    assert min(c2013[k] for k in STRAIGHT) > 0.9
    pd.testing.assert_frame_equal(ds.songs, real.songs)
    assert ds.averaged_check.sd[0].n_equal == real.averaged_check.sd[0].n_equal


def test_fallback_without_dynamic_files(real_deam: Path, tmp_path: Path, real):
    root = tmp_path / "deam"
    shutil.copytree(real_deam, root, ignore=shutil.ignore_patterns("features", "dynamic*"))
    ds = load_deam(root)
    assert ds.swap.method == METHOD_FALLBACK
    assert ds.swap.subset == "2013" and ds.swap.corrected
    assert ds.swap.correlations == {"2013": {}, "2014": {}}
    pd.testing.assert_frame_equal(ds.songs, real.songs)


def _correlated(n: int, rho: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    v = rng.standard_normal(n)
    a = rho * v + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    return v, a


@pytest.mark.parametrize("swapped", [False, True])
def test_rule_on_synthetic_subset(swapped: bool):
    """Valence and arousal correlated 0.6 (as in DEAM), static = dynamic + small noise:
    the margin rule flags exactly the swapped case."""
    rng = np.random.default_rng(3)
    v, a = _correlated(400, 0.6, rng)
    ids = np.arange(1001, 1401)
    dynamic = pd.DataFrame({"song_id": ids, "valence": v, "arousal": a})
    sv, sa = (a, v) if swapped else (v, a)
    noise = 0.3 * rng.standard_normal((2, 400))
    static = pd.DataFrame({"song_id": ids, "valence": sv + noise[0], "arousal": sa + noise[1]})
    verdict = audit_subset("2014", static, dynamic)
    assert verdict.method == METHOD_DYNAMIC and verdict.n_songs == 400
    assert verdict.swapped is swapped
