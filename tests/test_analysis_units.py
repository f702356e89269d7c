"""Unit tests of the analysis building blocks, each against an independent recomputation
(numpy / scipy closed forms) rather than against the code's own output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from analysis.compute.baselines import (
    BASELINE_CONSTANT_SD,
    BASELINE_RIDGE,
    BASELINE_SD_FROM_MEAN,
    compute_baselines,
)
from analysis.compute.bootstrap import (
    paired_bootstrap,
    paired_seed_test,
    percentile_interval,
    resample_indices,
    resampling_note,
    signed_rank_exact_p,
    signed_rank_normal_p,
    signed_rank_permutation_p,
)
from analysis.compute.ridge import fit_ridge, ridge_path
from analysis.compute.rows import PredictionRow
from analysis.compute.table_cells import SharedDraws, bootstrap_cell, resample_chunks
from analysis.present.findings import BETTER, TIED, WORSE, verdict
from analysis.present.render import Heading, Image, Paragraph, Table, to_html, to_markdown
from analysis.present.table_layout import fmt_bounds, fmt_cell, fmt_estimate, fmt_interval
from analysis.read.paper_tables import (
    FAR_BELOW_TEXT,
    compare_cell,
    is_far_below,
    load_paper_tables,
)
from analysis.read.sweep_results import load_sweep
from mer_uq import schema
from mer_uq.metrics import pearson_r, r2_score, spearman_rho

RNG = np.random.default_rng(7)


def test_ridge_path_matches_normal_equations() -> None:
    x = RNG.normal(size=(60, 8))
    y = x @ RNG.normal(size=8) + 0.3 + RNG.normal(scale=0.5, size=60)
    for alpha, (coef, intercept) in zip((0.1, 10.0), ridge_path(x, y, (0.1, 10.0)), strict=True):
        xc, yc = x - x.mean(0), y - y.mean()
        expected = np.linalg.solve(xc.T @ xc + alpha * np.eye(8), xc.T @ yc)
        np.testing.assert_allclose(coef, expected, rtol=1e-8, atol=1e-10)
        assert intercept == pytest.approx(y.mean() - x.mean(0) @ expected)


def test_fit_ridge_keeps_the_best_validation_penalty() -> None:
    x = RNG.normal(size=(120, 30))
    y = x[:, 0] + RNG.normal(scale=2.0, size=120)
    alphas = (1e-3, 1.0, 100.0, 1e4)
    fit = fit_ridge(x[:80], y[:80], x[80:], y[80:], alphas)
    scores = [r2_score(y[80:], x[80:] @ c + b) for c, b in ridge_path(x[:80], y[:80], alphas)]
    assert fit.alpha == alphas[int(np.argmax(scores))]
    assert fit.valid_r2 == pytest.approx(max(scores))


def _songs(n: int = 90) -> tuple[pd.DataFrame, np.ndarray]:
    features = RNG.normal(size=(n, 5))
    mean = np.tanh(features[:, 0] * 0.5)
    songs = pd.DataFrame({
        "song_id": np.arange(n, dtype=np.int64),
        "split": np.array(["train", "valid", "test"])[np.arange(n) % 3],
        "valence_mean": mean, "arousal_mean": -mean,
        "valence_sd": 0.3 - 0.1 * mean ** 2 + RNG.normal(scale=0.02, size=n),
        "arousal_sd": 0.25 + 0.05 * features[:, 1] + RNG.normal(scale=0.02, size=n),
    })
    return songs, features


def test_baselines_follow_their_definitions() -> None:
    songs, features = _songs()
    result = compute_baselines(songs, features)
    pred = result.predictions
    assert set(pred["method"]) == {BASELINE_RIDGE, BASELINE_CONSTANT_SD, BASELINE_SD_FROM_MEAN}
    assert set(pred["split"]) == {"valid", "test"}
    train = songs[songs["split"] == "train"]
    for dim in schema.DIMENSIONS:
        const = pred.loc[pred["method"] == BASELINE_CONSTANT_SD, f"{dim}_sigma"]
        np.testing.assert_allclose(const, train[f"{dim}_sd"].mean())
        quad = np.polyfit(train[f"{dim}_mean"], train[f"{dim}_sd"], 2)
        rows = pred[pred["method"] == BASELINE_SD_FROM_MEAN]
        np.testing.assert_allclose(rows[f"{dim}_sigma"],
                                   np.maximum(np.polyval(quad, rows[f"{dim}_mu"]), 1e-3))
        # every baseline shares the ridge probe's predicted mean
        mus = [pred.loc[pred["method"] == m, f"{dim}_mu"].to_numpy() for m in
               (BASELINE_RIDGE, BASELINE_CONSTANT_SD, BASELINE_SD_FROM_MEAN)]
        np.testing.assert_array_equal(mus[0], mus[1])
        np.testing.assert_array_equal(mus[0], mus[2])
    # the probe actually learns the mean from the features
    test = pred[(pred["method"] == BASELINE_RIDGE) & (pred["split"] == "test")]
    truth = songs.set_index("song_id").loc[test["song_id"], "valence_mean"]
    assert pearson_r(truth, test["valence_mu"]) > 0.9


def test_spearman_by_ranks_equals_mer_uq_spearman() -> None:
    y = np.round(RNG.normal(size=40), 1)  # ties, as resampling makes
    preds = {d: np.round(RNG.normal(size=(2, 40)), 1) for d in schema.DIMENSIONS}
    row = PredictionRow("x", "x", "paper", "x", False, (0, 1), preds, preds)
    indices = resample_indices(40, 25, seed=3)
    draws = bootstrap_cell(row, "mean", "valence", y, "spearman", indices)
    expected = [np.mean([spearman_rho(y[ix], p[ix]) for p in preds["valence"]]) for ix in indices]
    np.testing.assert_array_equal(draws, expected)  # each draw IS mer_uq's metric
    distinct = {d: RNG.normal(size=(2, 40)) for d in schema.DIMENSIONS}  # no ties at all
    untied = PredictionRow("u", "u", "paper", "u", False, (0, 1), distinct, distinct)
    y_untied = RNG.normal(size=40)
    expected_untied = [np.mean([spearman_rho(y_untied[ix], p[ix]) for p in distinct["valence"]])
                       for ix in indices]
    np.testing.assert_array_equal(
        bootstrap_cell(untied, "mean", "valence", y_untied, "spearman", indices), expected_untied)
    r2_draws = bootstrap_cell(row, "mean", "valence", y, "r2", indices)
    expected_r2 = [np.mean([r2_score(y[ix], p[ix]) for p in preds["valence"]]) for ix in indices]
    np.testing.assert_array_equal(r2_draws, expected_r2)
    r_draws = bootstrap_cell(row, "mean", "valence", y, "pearson", indices)
    expected_r = [np.mean([pearson_r(y[ix], p[ix]) for p in preds["valence"]]) for ix in indices]
    np.testing.assert_array_equal(r_draws, expected_r)
    shared = SharedDraws(indices)  # Pearson and R² from one pass: the same values
    np.testing.assert_array_equal(
        bootstrap_cell(row, "mean", "valence", y, "pearson", indices, shared=shared), expected_r)
    np.testing.assert_array_equal(
        bootstrap_cell(row, "mean", "valence", y, "r2", indices, shared=shared), expected_r2)
    # a constant member makes the correlation undefined, as mer_uq's pearson_r says
    flat = {d: np.vstack([preds[d][0], np.ones(40)]) for d in schema.DIMENSIONS}
    flat_row = PredictionRow("c", "c", "paper", "c", False, (0, 1), flat, flat)
    assert np.isnan(bootstrap_cell(flat_row, "mean", "valence", y, "pearson", indices)).all()


@pytest.mark.parametrize("metric", ["spearman", "pearson", "r2"])
def test_bootstrap_in_blocks_equals_one_block(metric: str) -> None:
    """Blocks of resamples (bounded memory) change no bit of any draw, whatever the
    block size, with ties on both sides and a constant member."""
    y = np.round(RNG.normal(size=300), 1)
    preds = {d: np.vstack([np.round(RNG.normal(size=(2, 300)), 1), np.full((1, 300), 0.5)])
             for d in schema.DIMENSIONS}
    row = PredictionRow("x", "x", "paper", "x", False, (0, 1, 2), preds, preds)
    indices = resample_indices(300, 97, seed=5)
    whole = bootstrap_cell(row, "mean", "valence", y, metric, indices, entries=10**9)
    assert len(resample_chunks(97, 300, 10**9)) == 1
    for entries in (1, 300 * 7, 300 * 32):
        assert len(resample_chunks(97, 300, entries)) > 1
        blocks = bootstrap_cell(row, "mean", "valence", y, metric, indices, entries=entries)
        np.testing.assert_array_equal(blocks, whole)


def test_shared_draws_are_the_unshared_draws_bit_for_bit() -> None:
    """Cells that reuse draws (same arrays; for Spearman the same or the reversed ranks:
    a positive factor, a square, a log, 1/x, -log x) get exactly the draws computed
    afresh, and arrays whose ranks differ (a member with a NaN, a transform that merges
    ties, another index matrix) are computed afresh."""
    y = np.round(RNG.uniform(0.1, 2.0, size=120), 2)
    sigma = np.vstack([np.round(RNG.uniform(0.1, 2.0, size=(2, 120)), 2),
                       RNG.uniform(0.1, 2.0, size=(1, 120))])
    with_nan = sigma.copy()
    with_nan[1, 3] = np.nan
    merged = sigma.copy()
    merged[0] = np.floor(merged[0] * 4)  # a transform that merges values: new ties
    factor = np.array([[1.37], [0.61], [2.9]])
    variants = [sigma, sigma * factor, sigma**2, np.log(sigma), 1.0 / sigma, -np.log(sigma),
                with_nan, merged, sigma.copy()]
    indices = resample_indices(120, 60, seed=11)
    for metric in ("spearman", "pearson", "r2"):
        shared = SharedDraws(indices)
        for values in variants:
            row = PredictionRow("x", "x", "paper", "x", False, (0, 1, 2),
                                {d: values for d in schema.DIMENSIONS},
                                {d: values for d in schema.DIMENSIONS})
            fresh = bootstrap_cell(row, "sd", "valence", y, metric, indices)
            reused = bootstrap_cell(row, "sd", "valence", y, metric, indices.copy(),
                                    shared=shared)
            np.testing.assert_array_equal(reused, fresh)
        if metric == "spearman":  # the monotone transforms were served from the first
            assert len(shared.ranks) == 1
            assert len(next(iter(shared.ranks.values()))) == 3 + 1  # + merged's new member
        other = resample_indices(120, 60, seed=12)
        assert not shared.serves(other)
        np.testing.assert_array_equal(
            bootstrap_cell(row, "sd", "valence", y, metric, other, shared=shared),
            bootstrap_cell(row, "sd", "valence", y, metric, other))


def test_pearson_on_resamples_of_one_song_is_undefined() -> None:
    """A resample that drew one song only makes every prediction constant there: NaN,
    as mer_uq's pearson_r says, whether the member's values are all distinct (told from
    the indices) or tied (told from the values)."""
    y = RNG.normal(size=30)
    members = np.vstack([RNG.normal(size=30), np.round(RNG.normal(size=30), 0)])
    row = PredictionRow("x", "x", "paper", "x", False, (0, 1),
                        {d: members for d in schema.DIMENSIONS},
                        {d: members for d in schema.DIMENSIONS})
    indices = resample_indices(30, 12, seed=2)
    indices[3] = 7
    indices[8] = 0
    draws = bootstrap_cell(row, "mean", "valence", y, "pearson", indices)
    expected = [np.mean([pearson_r(y[ix], p[ix]) for p in members]) for ix in indices]
    np.testing.assert_array_equal(draws, expected)
    assert np.isnan(draws[[3, 8]]).all() and np.isfinite(np.delete(draws, [3, 8])).all()


def test_resampling_note_says_when_resamples_cannot_show() -> None:
    note = resampling_note("X", "--opt", 1000, 100000, np.array([4e-4, 8e-4]), 1e-3)
    assert "1000 bootstrap resamples of 100000 songs (--opt)" in note
    assert "narrower than 0.001" in note and "8.0e-04" in note
    wide = resampling_note("X", "--opt", 1000, 300, np.array([4e-4, 0.05]), 1e-3)
    assert "narrower" not in wide
    assert "narrower" not in resampling_note("X", "--opt", 1000, 9, np.array([np.nan]), 1e-3)
    assert "no interval" in resampling_note("X", "--opt", 0, 300, np.array([]), 1e-3)


def test_percentile_interval_and_nan_handling() -> None:
    values = np.arange(1001, dtype=float)
    low, high = percentile_interval(values, 0.95)
    assert (low, high) == pytest.approx((25.0, 975.0))
    mostly_nan = np.r_[np.full(10, np.nan), 1.0]
    assert np.isnan(percentile_interval(mostly_nan)[0])


def test_paired_bootstrap_detects_a_consistent_shift_only() -> None:
    base = RNG.normal(size=500)
    shifted = paired_bootstrap(1.1, 1.0, base + 0.1, base)
    assert shifted.ci_low == pytest.approx(0.1) and shifted.p_value == pytest.approx(1 / 500)
    noise = paired_bootstrap(0.0, 0.0, base, base[::-1])
    assert noise.ci_low < 0 < noise.ci_high and noise.p_value > 0.05


@pytest.mark.parametrize("n", [5, 6, 9, 15, 24, 50])
def test_exact_signed_rank_p_equals_scipy_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.3, 1.0, 3.0):  # p from 1 down to the smallest possible
        a, b = rng.normal(size=n) + shift, rng.normal(size=n)
        assert signed_rank_exact_p(a - b) == stats.wilcoxon(a, b).pvalue
        _, p = paired_seed_test(dict(enumerate(a)), dict(enumerate(b)))
        assert p == stats.wilcoxon(a, b).pvalue


def test_signed_rank_ties_zeros_and_large_n_leave_the_exact_method() -> None:
    tied = np.array([0.1, -0.1, 0.2, 0.3, -0.4, 0.5])
    with_zero = np.array([0.0, 0.1, -0.2, 0.3, 0.4, 0.5])
    assert signed_rank_exact_p(tied) is None and signed_rank_exact_p(with_zero) is None
    assert signed_rank_exact_p(np.arange(1.0, 52.0)) is None
    for d in (tied, with_zero):
        _, p = paired_seed_test(dict(enumerate(d)), dict(enumerate(np.zeros(d.size))))
        assert p == stats.wilcoxon(d).pvalue


@pytest.mark.parametrize("n", [14, 15, 30, 50, 51, 80])
def test_normal_signed_rank_p_equals_scipy_bit_for_bit(n: int) -> None:
    """Zeros and ties (rounding-level differences, as between a conformal twin and its
    original) and more than 50 pairs: scipy's normal approximation, to the last bit."""
    rng = np.random.default_rng(n)
    cases = [rng.choice([0.0, 1e-17, -2e-17, 5.5e-17, -5.5e-17, 3e-17], n),
             rng.integers(-3, 4, n).astype(np.float64), np.round(rng.normal(size=n), 1),
             rng.normal(size=n) + 0.4]
    for d in cases:
        if np.all(d == 0):
            continue
        expected = stats.wilcoxon(d).pvalue
        if n <= 50 and np.all(d != 0) and np.unique(np.abs(d)).size == n:
            assert signed_rank_normal_p(d) is None  # the exact test's case
            continue
        assert signed_rank_normal_p(d) == expected
        _, p = paired_seed_test(dict(enumerate(d)), dict(enumerate(np.zeros(n))))
        assert p == expected


def test_normal_signed_rank_leaves_the_permutation_cases() -> None:
    assert signed_rank_normal_p(np.array([0.0, 0.1, -0.1, 0.2, 0.3, 0.4])) is None
    assert signed_rank_normal_p(np.r_[np.zeros(3), np.arange(1.0, 11.0)]) is None  # 13


@pytest.mark.parametrize("n", [5, 8, 11])
def test_permutation_signed_rank_p_equals_scipy_bit_for_bit(n: int) -> None:
    """Zeros or ties among at most 13 pairs (5 seeds of a twin and its original):
    scipy's exhaustive sign-flip test, to the last bit; other cases are not its own."""
    rng = np.random.default_rng(n)
    cases = [rng.choice([0.0, 1e-17, -2e-17, 5.5e-17], n), rng.integers(-2, 3, n) * 1.0,
             np.round(rng.normal(size=n), 0) + 0.5, np.r_[0.0, rng.normal(size=n - 1)]]
    for d in cases:
        if np.all(d == 0):
            continue
        expected = stats.wilcoxon(d).pvalue
        assert signed_rank_permutation_p(d) == expected
        _, p = paired_seed_test(dict(enumerate(d)), dict(enumerate(np.zeros(n))))
        assert p == expected
    assert signed_rank_permutation_p(rng.normal(size=n)) is None  # no tie: the exact test
    assert signed_rank_permutation_p(np.r_[0.0, rng.normal(size=14)]) is None  # 15: normal


def test_paired_seed_test_uses_matched_seeds() -> None:
    a = {s: 0.5 + 0.01 * s for s in range(10)}
    b = {s: 0.4 + 0.01 * s for s in range(12)}
    n, p = paired_seed_test(a, b)
    assert n == 10
    assert p == pytest.approx(stats.wilcoxon(np.array(list(a.values())),
                                             np.array([b[s] for s in a])).pvalue)
    assert np.isnan(paired_seed_test({0: 1.0}, {0: 0.0})[1])


def test_verdict_reads_the_paired_interval_in_either_order() -> None:
    comp = pd.DataFrame([
        {"table": "table3", "row_a": "nll", "row_b": "baseline_ridge", "dimension": "valence",
         "metric": "pearson", "ci_low": 0.01, "ci_high": 0.2},
        {"table": "table3", "row_a": "mse", "row_b": "baseline_ridge", "dimension": "valence",
         "metric": "pearson", "ci_low": -0.1, "ci_high": 0.2},
    ])
    assert verdict(comp, "table3", "nll", "baseline_ridge", "valence", "pearson") == BETTER
    assert verdict(comp, "table3", "baseline_ridge", "nll", "valence", "pearson") == WORSE
    assert verdict(comp, "table3", "mse", "baseline_ridge", "valence", "pearson") == TIED


def test_paper_tables_hold_every_published_cell() -> None:
    paper = load_paper_tables()
    assert "2501.11570" in paper.url and "Watcharasupat" in paper.citation
    cells = paper.cells.set_index(["table", "method", "dimension", "metric"])
    # Table 2: four methods (no MC dropout row), Table 3: five; 6 cells each
    assert len(cells.loc["table2"]) == 24 and len(cells.loc["table3"]) == 30
    assert "mc_dropout" not in cells.loc["table2"].index.get_level_values("method")
    # every cell is a number, or the paper's "<< 0" (only Table 3's R² cells)
    far_below = cells["paper_text"] == "<< 0"
    assert cells.loc[~far_below, "paper_value"].notna().all()
    assert set(cells[far_below].index.get_level_values("metric")) == {"r2"}
    assert far_below.sum() == 10 and cells.loc[far_below, "paper_value"].isna().all()
    # spot checks against the paper's printed tables
    assert tuple(cells.loc[("table2", "seeds", "valence", "r2"), ["paper_value", "paper_sd"]]
                 ) == (0.59, 0.04)
    assert cells.at[("table2", "kld", "arousal", "pearson"), "paper_value"] == 0.81
    assert cells.at[("table3", "mse", "valence", "pearson"), "paper_text"] == "-0.16 ± 0.05"
    assert cells.at[("table3", "seeds", "arousal", "spearman"), "paper_text"] == "0.08"


def test_paper_cells_compare_by_interval_or_by_sign() -> None:
    inside = compare_cell(0.60, 0.55, 0.65, 0.59, "0.59 ± 0.04")
    assert inside["paper_in_ci"] is True and inside["difference"] == pytest.approx(0.01)
    outside = compare_cell(0.31, 0.25, 0.37, 0.59, "0.59 ± 0.04")
    assert outside["paper_in_ci"] is False and outside["agrees"] is False
    assert compare_cell(-14.8, -16.0, -13.0, np.nan, "<< 0")["ours_below_zero"] is True
    above = compare_cell(0.01, -0.02, 0.04, np.nan, "<< 0")
    assert above["ours_below_zero"] is False and above["paper_in_ci"] is None


def test_render_markdown_and_html_agree() -> None:
    frame = pd.DataFrame({"Method": ["A|B", "C"], "r": ["0.1", "<0.2>"]})
    blocks = [Heading("T", 1), Paragraph("p & q"), Table(frame, "cap"), Image("f/x.png", "x")]
    md = to_markdown(blocks)
    assert "| A\\|B | 0.1 |" in md and "![x](f/x.png)" in md
    page = to_html(blocks, "title")
    assert "&lt;0.2&gt;" in page and 'src="f/x.png"' in page and "p &amp; q" in page
    assert fmt_cell(0.5, 0.01, False) == "0.500 ± 0.010" and fmt_cell(0.5, 0.01, True) == "0.500"


def test_interval_text_is_spelled_once() -> None:
    """An undefined end prints as n/a inside the brackets; a table cell without an interval
    prints nothing (fmt_interval), an estimate its value before the brackets."""
    assert fmt_bounds(-0.1234, np.nan) == "[-0.123, n/a]"
    assert fmt_interval(0.1, 0.2) == "[0.100, 0.200]" and fmt_interval(np.nan, 0.2) == ""
    assert fmt_estimate(0.5, 0.25, 0.75, 4) == "0.5000 [0.2500, 0.7500]"
    assert fmt_estimate(np.nan, np.nan, np.nan) == "n/a [n/a, n/a]"


def test_the_far_below_zero_cells_are_named_once() -> None:
    paper = load_paper_tables()
    far = paper.cells[paper.cells["paper_text"].map(is_far_below)]
    assert len(far) == 10 and set(far["table"]) == {"table3"} and set(far["metric"]) == {"r2"}
    assert far["paper_value"].isna().all() and (far["paper_text"] == FAR_BELOW_TEXT).all()


def _trial_frame(method: str, seeds: tuple[int, ...]) -> pd.DataFrame:
    rows = [{"song_id": sid, "split": "test", "method": method, "seed": s,
             **{f"{d}_mu": 0.1 for d in schema.DIMENSIONS},
             **{f"{d}_sigma": 0.2 for d in schema.DIMENSIONS}}
            for s in seeds for sid in (2, 3, 4)]
    return pd.DataFrame(rows)


def test_load_sweep_names_corrupt_and_missing_trials(tmp_path) -> None:
    trials = tmp_path / "trials"
    trials.mkdir()
    pq.write_table(pa.Table.from_pandas(_trial_frame("nll", (0, 1)), preserve_index=False),
                   trials / "nll__a.parquet")
    (trials / "mse__b.parquet").write_bytes(b"PAR1 not really")
    pq.write_table(pa.Table.from_pandas(_trial_frame("kld", (0,)).drop(columns="seed"),
                                        preserve_index=False), trials / "kld__c.parquet")
    (tmp_path / "sweep.json").write_text(json.dumps(  # a whole record: the schema's keys
        {"deam_dir": None, "split_file": None, "fix_swap": True, "include_2015": False,
         "features": None, "feature_column": None, "methods": ["nll", "mse", "kld", "seeds"],
         "trainings": ["nll", "mse", "kld", "mean"], "seeds": [0, 1], "model": {},
         "train": {}, "mc_passes": 2, "created": "2026-01-01"}))
    sweep = load_sweep(tmp_path)
    sources = {p.source for p in sweep.problems}
    assert "trials/mse__b.parquet" in sources
    assert "trials/kld__c.parquet" in sources  # no seed column: invalid, named
    assert "mean seeds [0, 1]" in sources and "mse seeds [0, 1]" in sources
    assert "nll seeds [0, 1]" not in sources
    assert sweep.loaded_files == ["trials/nll__a.parquet"]
    assert set(sweep.predictions["method"]) == {"nll"}


