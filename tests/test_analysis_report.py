"""The report on a small REAL sweep folder: mer_uq.trial.run_trial (no Ray) trains the
paper's methods for two seeds with very short training, the predictions are written per
the contract (DIR/trials/<training>__<id>.parquet + DIR/sweep.json), and every number of
the report is checked against an independent recomputation from those Parquet files."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from analysis import report as report_cli
from analysis.compute.pipeline import AnalysisSettings, ReportData, compute_report_data
from analysis.compute.table_cells import TABLE_TITLES
from analysis.present.document import _data_audit_blocks
from analysis.present.table_layout import PAPER_LINE
from analysis.report import main, parse_args
from analysis.write.report_files import ReportWritten, write_report_files
from analysis.write.wandb_summary import log_summary
from mer_uq import schema
from mer_uq.data.dataset import load_deam
from mer_uq.data.features import load_features
from mer_uq.data.reliability import reliability_to_dict, split_half_reliability
from mer_uq.model import FCNConfig
from mer_uq.training import TrainConfig
from mer_uq.trial import TrialSpec, run_trial

TRAININGS = ("mean", "nll", "mse", "kld")
SEEDS = (0, 1)
SETTINGS = AnalysisSettings(n_boot=60, reliability_repeats=20, reliability_boot=40,
                            summary_reliability_repeats=20, summary_reliability_boot=40)
PAPER_T2 = ("seeds", "mc_dropout", "nll", "mse", "kld")
TWO_OUTPUT = ("nll", "mse", "kld")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write_trial(path: Path, frame: pd.DataFrame, meta: dict) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({"mer_uq.trial": json.dumps(meta)})
    pq.write_table(table, path)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    (root / "trials").mkdir()
    dataset, features = load_deam(), load_features()
    model = FCNConfig(hidden_width=16)
    train = TrainConfig(epochs=2, steps_per_epoch=4, batch_size=16, device="cpu")
    for training in TRAININGS:
        spec = TrialSpec(training=training, seeds=SEEDS, model=model, train=train, mc_passes=8)
        result = run_trial(spec, dataset, features)
        _write_trial(root / "trials" / f"{training}__t0.parquet", result.predictions,
                     {"training": training, "metrics": result.metrics})
    config = {"deam_dir": None, "split_file": None, "fix_swap": True, "include_2015": False,
              "features": None, "feature_column": None, "methods": list(PAPER_T2),
              "trainings": list(TRAININGS), "seeds": list(SEEDS),
              "model": {"hidden_width": 16}, "train": {"epochs": 2}, "mc_passes": 8,
              "created": "test"}
    (root / "sweep.json").write_text(json.dumps(config))
    return root


@pytest.fixture(scope="module")
def data(sweep_dir: Path) -> ReportData:
    return compute_report_data(sweep_dir, SETTINGS)


@pytest.fixture(scope="module")
def written(data: ReportData) -> ReportWritten:
    return write_report_files(data)


@pytest.fixture(scope="module")
def report_md(written: ReportWritten) -> Path:
    return written.markdown


def test_write_report_says_what_it_wrote(written: ReportWritten) -> None:
    """The sweep prints from this record, never from the files read back: it must be the
    files' own content."""
    assert written.markdown == written.report_dir / "report.md" and written.markdown.is_file()
    assert written.html.is_file()
    assert all(path.is_file() and path.suffix == ".csv" for path in written.tables.values())
    assert {"table2", "table3", "cells", "problems"} <= set(written.tables)
    assert all(path.is_file() for path in written.figures.values())
    # every table and figure file of the folder is named, optional sections' included
    on_disk = {p.stem for p in (written.report_dir / "tables").glob("*.csv")}
    assert on_disk == set(written.tables), on_disk ^ set(written.tables)
    pngs = sorted((written.report_dir / "figures").glob("*.png"))
    assert sorted(written.figures.values()) == pngs
    titles = [title for title, _ in written.console_tables]
    assert titles == [TABLE_TITLES["table2"], TABLE_TITLES["table3"]]
    for (_, text), stem in zip(written.console_tables, ("table2", "table3"), strict=True):
        assert text == (written.report_dir / "tables" / f"{stem}.md").read_text()


def _trials(sweep_dir: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((sweep_dir / "trials").glob("*.parquet"))],
                     ignore_index=True)


def _targets(song_ids: np.ndarray) -> pd.DataFrame:
    return load_deam().songs.set_index("song_id").loc[song_ids]


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """R², Pearson, Spearman recomputed with numpy / scipy only."""
    r2 = 1.0 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)
    return {"r2": r2, "pearson": stats.pearsonr(y, p)[0], "spearman": stats.spearmanr(y, p)[0]}


def _cell(data: ReportData, table: str, key: str, dim: str, metric: str) -> pd.Series:
    c = data.cells
    sel = c[(c["table"] == table) & (c["row_key"] == key) & (c["dimension"] == dim)
            & (c["metric"] == metric)]
    assert len(sel) == 1, (table, key, dim, metric)
    return sel.iloc[0]


def _test_matrix(trials: pd.DataFrame, method: str, column: str, song_ids: np.ndarray
                 ) -> np.ndarray:
    rows = trials[(trials["method"] == method) & (trials["split"] == "test")]
    wide = rows.pivot(index="seed", columns="song_id", values=column)
    return wide.loc[list(SEEDS), song_ids].to_numpy()


def test_every_cell_present(data: ReportData) -> None:
    with_sd = [*PAPER_T2, "laplace", *(f"ensemble_{m}" for m in TWO_OUTPUT)]
    calibrated = [f"{k}_conformal" for k in with_sd]
    expected = {
        "table2": [*with_sd, *calibrated, "seeds_single", "baseline_ridge"],
        "table3": [*with_sd, *calibrated, "baseline_constant_sd", "baseline_sd_from_mean",
                   "baseline_ridge"],
    }
    for table, keys in expected.items():
        assert sorted(data.cells.loc[data.cells["table"] == table, "row_key"].unique()) == \
            sorted(keys)
        for key in keys:
            for dim in schema.DIMENSIONS:
                for metric in ("r2", "pearson", "spearman"):
                    cell = _cell(data, table, key, dim, metric)
                    undefined = key == "baseline_constant_sd" and metric != "r2"
                    assert np.isnan(cell["value"]) == undefined, (table, key, dim, metric)
                    if not undefined:
                        assert cell["ci_low"] <= cell["ci_high"]
                    assert np.isfinite(cell["ceiling"])
    assert not data.problems


def test_conformal_rows_keep_correlations_and_change_scale(data: ReportData) -> None:
    """One factor per seed and dimension: Table 3's r and rho equal the row's own, its R²
    and the rating scores move; the factors come from the validation songs only."""
    for key in (*PAPER_T2, "ensemble_kld"):
        for dim in schema.DIMENSIONS:
            for metric in ("pearson", "spearman"):
                assert _cell(data, "table3", f"{key}_conformal", dim, metric)["value"] == \
                    pytest.approx(_cell(data, "table3", key, dim, metric)["value"], abs=1e-12)
            for metric in ("r2", "pearson", "spearman"):
                assert _cell(data, "table2", f"{key}_conformal", dim, metric)["value"] == \
                    _cell(data, "table2", key, dim, metric)["value"]
            assert _cell(data, "table3", f"{key}_conformal", dim, "r2")["value"] != \
                _cell(data, "table3", key, dim, "r2")["value"]
    factors = data.conformal_factors
    assert set(factors["row_key"]) == {f"{k}_conformal" for k in
                                       (*PAPER_T2, "laplace",
                                        *(f"ensemble_{m}" for m in TWO_OUTPUT))}
    assert (factors["factor"] > 0).all() and (factors["level"] == 0.8).all()
    n_valid = data.dataset.ratings["song_id"].isin(data.dataset.song_ids("valid")).sum()
    assert (factors["n_calibration_ratings"] == n_valid).all()


def test_per_seed_cells_recompute_from_the_parquets(sweep_dir: Path, data: ReportData) -> None:
    trials = _trials(sweep_dir)
    song_ids = np.sort(trials.loc[trials["split"] == "test", "song_id"].unique())
    np.testing.assert_array_equal(song_ids, data.song_ids)
    targets = _targets(song_ids)
    per_seed_methods = ("mc_dropout", *TWO_OUTPUT)
    cases = [("table2", m, schema.PRED_MU, schema.TARGET_MEAN) for m in per_seed_methods]
    cases += [("table2", "seeds", schema.PRED_MU, schema.TARGET_MEAN)]
    cases += [("table3", m, schema.PRED_SIGMA, schema.TARGET_SD) for m in per_seed_methods]
    for table, method, pred_col, target_col in cases:
        key = "seeds_single" if method == "seeds" else method
        for dim in schema.DIMENSIONS:
            preds = _test_matrix(trials, method, pred_col[dim], song_ids)
            y = targets[target_col[dim]].to_numpy()
            per_seed = [_scores(y, p) for p in preds]
            for metric in ("r2", "pearson", "spearman"):
                values = np.array([s[metric] for s in per_seed])
                cell = _cell(data, table, key, dim, metric)
                assert cell["value"] == pytest.approx(values.mean(), abs=1e-10)
                assert cell["sd_over_seeds"] == pytest.approx(values.std(ddof=1), abs=1e-10)
                assert cell["n_seeds"] == len(SEEDS)


def test_ensemble_rows_come_from_the_member_predictions(sweep_dir: Path, data: ReportData
                                                        ) -> None:
    trials = _trials(sweep_dir)
    targets = _targets(data.song_ids)
    for dim in schema.DIMENSIONS:
        y_mean = targets[schema.TARGET_MEAN[dim]].to_numpy()
        y_sd = targets[schema.TARGET_SD[dim]].to_numpy()
        mus = _test_matrix(trials, "seeds", schema.PRED_MU[dim], data.song_ids)
        assert np.isnan(_test_matrix(trials, "seeds", schema.PRED_SIGMA[dim], data.song_ids)).all()
        for metric, value in _scores(y_mean, mus.mean(axis=0)).items():
            assert _cell(data, "table2", "seeds", dim, metric)["value"] == pytest.approx(value)
        # Table 3 "random seeds": the SD across the seeds' means (eq. 5: n - 1 by default)
        for metric, value in _scores(y_sd, mus.std(axis=0, ddof=1)).items():
            assert _cell(data, "table3", "seeds", dim, metric)["value"] == pytest.approx(value)
        for method in TWO_OUTPUT:
            mu = _test_matrix(trials, method, schema.PRED_MU[dim], data.song_ids)
            sigma = _test_matrix(trials, method, schema.PRED_SIGMA[dim], data.song_ids)
            total_sd = np.sqrt((sigma ** 2).mean(axis=0) + mu.var(axis=0))
            key = f"ensemble_{method}"
            for metric, value in _scores(y_mean, mu.mean(axis=0)).items():
                assert _cell(data, "table2", key, dim, metric)["value"] == pytest.approx(value)
            for metric, value in _scores(y_sd, total_sd).items():
                assert _cell(data, "table3", key, dim, metric)["value"] == pytest.approx(value)
            parts = data.variance_parts.set_index(["row_key", "dimension"]).loc[(key, dim)]
            assert parts["epistemic_var"] == pytest.approx(mu.var(axis=0).mean())
            assert parts["aleatoric_var"] == pytest.approx((sigma ** 2).mean())


def test_summary_reliability_options_parsed_passed_and_defaults(
        sweep_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data summary's own budget: its defaults are the ceilings' (no number moves
    unless asked), the command parses both options and hands them to the report."""
    default = AnalysisSettings()
    assert (default.summary_reliability_boot, default.summary_reliability_repeats) == (
        default.reliability_boot, default.reliability_repeats)
    assert parse_args([str(sweep_dir)]).summary_reliability_boot == default.reliability_boot
    seen: list[AnalysisSettings] = []

    def fake_write_report(folder: Path, **kwargs) -> ReportWritten:
        seen.append(kwargs["settings"])
        raise FileNotFoundError("stop here")

    monkeypatch.setattr(report_cli, "write_report", fake_write_report)
    assert main([str(sweep_dir), "--summary-reliability-boot", "7",
                 "--summary-reliability-repeats", "3", "--reliability-boot", "11"]) == 2
    assert (seen[0].summary_reliability_boot, seen[0].summary_reliability_repeats) == (7, 3)
    assert (seen[0].reliability_boot, seen[0].reliability_repeats) == (
        11, default.reliability_repeats)
    with pytest.raises(SystemExit):
        parse_args([str(sweep_dir), "--summary-reliability-boot", "0"])


def test_summary_reliability_options_move_only_the_summary(sweep_dir: Path,
                                                           data: ReportData) -> None:
    """Other summary resamples/repeats change the all-song reliability (recorded in
    data_summary.json's estimates and in the audit's sentence) and nothing else."""
    settings = replace(SETTINGS, summary_reliability_boot=17, summary_reliability_repeats=5)
    other = compute_report_data(sweep_dir, settings)
    expected = split_half_reliability(load_deam().ratings, n_repeats=5, n_boot=17,
                                      seed=SETTINGS.seed)
    assert other.data_summary["reliability"] == reliability_to_dict(expected)
    assert other.data_summary["reliability"] != data.data_summary["reliability"]
    for by_stat in other.data_summary["reliability"].values():
        assert all((e["n_boot"], e["n_repeats"]) == (17, 5) for e in by_stat.values())
    assert {k: v for k, v in other.data_summary.items() if k != "reliability"} == {
        k: v for k, v in data.data_summary.items() if k != "reliability"}
    pd.testing.assert_frame_equal(other.cells, data.cells)
    pd.testing.assert_frame_equal(other.ceilings, data.ceilings)
    pd.testing.assert_frame_equal(other.reliability, data.reliability)
    pd.testing.assert_frame_equal(other.comparisons, data.comparisons)
    audit = " ".join(_data_audit_blocks(other.data_summary)[0].items)
    n_songs = other.data_summary["n_songs"]
    assert (f"17 bootstrap resamples of {n_songs} songs (--summary-reliability-boot)"
            in audit)
    assert "5 random half splits per song (--summary-reliability-repeats)" in audit


def test_ceilings_equal_mer_uq_reliability(data: ReportData) -> None:
    ds = load_deam()
    test_ratings = ds.ratings[ds.ratings["song_id"].isin(ds.song_ids("test"))]
    rel = split_half_reliability(test_ratings, n_repeats=SETTINGS.reliability_repeats,
                                 n_boot=SETTINGS.reliability_boot, seed=SETTINGS.seed)
    ceil = data.ceilings.set_index(["target", "dimension", "metric"])
    for dim in schema.DIMENSIONS:
        for stat in ("mean", "sd"):
            est = rel[dim][stat]
            assert ceil.loc[(stat, dim, "pearson"), "ceiling"] == pytest.approx(est.ceiling)
            assert ceil.loc[(stat, dim, "spearman"), "ceiling"] == pytest.approx(est.ceiling)
            assert ceil.loc[(stat, dim, "r2"), "ceiling"] == pytest.approx(est.reliability)
            assert ceil.loc[(stat, dim, "pearson"), "ceiling_ci_high"] == pytest.approx(
                est.ceiling_ci_high)
            table = "table2" if stat == "mean" else "table3"
            assert _cell(data, table, "nll", dim, "pearson")["ceiling"] == pytest.approx(
                est.ceiling)


def test_rating_scores_recompute(data: ReportData) -> None:
    ds = load_deam()
    ratings = ds.ratings[ds.ratings["song_id"].isin(data.song_ids)]
    row = next(r for r in data.rows if r.key == "ensemble_nll")
    scores = data.scores.set_index(["row_key", "dimension", "score"])["value"]
    for dim in schema.DIMENSIONS:
        mu = pd.Series(row.mu[dim][0], index=data.song_ids).loc[ratings["song_id"]].to_numpy()
        sd = pd.Series(row.sigma[dim][0], index=data.song_ids).loc[ratings["song_id"]].to_numpy()
        y = ratings[dim].to_numpy()
        nll = -stats.norm.logpdf(y, mu, sd).mean()
        assert scores[("ensemble_nll", dim, "nll")] == pytest.approx(nll)
        inside = np.abs(y - mu) <= stats.norm.ppf(0.975) * sd
        assert scores[("ensemble_nll", dim, "coverage_95")] == pytest.approx(inside.mean())


def test_html_is_valid_and_links_only_existing_files(report_md: Path) -> None:
    html5lib = pytest.importorskip("html5lib")
    report_dir = report_md.parent
    parser = html5lib.HTMLParser(strict=True)
    document = parser.parse((report_dir / "report.html").read_text(encoding="utf-8"))
    assert not parser.errors
    namespace = "{http://www.w3.org/1999/xhtml}"
    targets = [e.get("src") for e in document.iter(f"{namespace}img")]
    targets += [e.get("href") for e in document.iter(f"{namespace}a")]
    assert targets
    for target in targets:
        if target.startswith(("http://", "https://", "#")):
            continue
        assert (report_dir / target).is_file(), target


def test_paper_comparison_has_every_published_cell(data: ReportData) -> None:
    compared = data.cells[data.cells["paper_text"].map(lambda t: isinstance(t, str))]
    assert len(compared) == len(data.paper.cells) == 54
    # Table 2's "Random seeds" is compared as the single models, Table 3's as the ensemble
    seeds = compared[compared["paper_method"] == "seeds"].groupby("table")["row_key"].unique()
    assert list(seeds["table2"]) == ["seeds_single"] and list(seeds["table3"]) == ["seeds"]
    assert not (compared["table"].eq("table2") & compared["row_key"].eq("mc_dropout")).any()
    numeric = compared[compared["paper_text"] != "<< 0"]
    inside = (numeric["ci_low"] <= numeric["paper_value"]) & \
        (numeric["paper_value"] <= numeric["ci_high"])
    assert list(numeric["paper_in_ci"]) == list(inside)
    np.testing.assert_allclose(numeric["difference"], numeric["value"] - numeric["paper_value"])
    signs = compared[compared["paper_text"] == "<< 0"]
    assert list(signs["ours_below_zero"]) == list(signs["value"] < 0)


def test_deam_report_meets_the_paper(report_md: Path, data: ReportData) -> None:
    """On DEAM the published cells stay: '↳ paper' rows under the paper's methods in Tables 2
    and 3, the findings' counts, the vs-paper tables and the citation; no line saying the
    comparison is skipped (tests/test_report_non_deam.py: the other data)."""
    text = report_md.read_text()
    assert data.paper is not None
    assert text.split("\n\n")[1].startswith("DEAM 2013+2014 (label swap corrected), ")
    assert text.count(f"| {PAPER_LINE} |") == 2 * len(PAPER_T2) - 1  # no MC dropout in T2
    for present in ("the paper's value lies inside our 95 % interval", "Ours vs published",
                    "Published numbers: "):
        assert present in text, present
    assert "Not compared with the published paper" not in text
    for stem in ("table2_vs_paper", "table3_vs_paper"):
        assert len(pd.read_csv(report_md.parent / "tables" / f"{stem}.csv")) > 0


def test_report_files_and_figures(report_md: Path) -> None:
    report_dir = report_md.parent
    text = report_md.read_text()
    for heading in ("Table 2", "Table 3", "Reliability ceiling", "Findings", "Details",
                    "Data audit",
                    "Paired comparisons", "Uncertainty scores"):
        assert heading in text
    html = (report_dir / "report.html").read_text()
    figures = sorted((report_dir / "figures").glob("*.png"))
    assert len(figures) == 5
    for png in figures:
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000, png.name
        assert f'src="figures/{png.name}"' in html and f"(figures/{png.name})" in text
    for stem in ("table2", "table3"):
        for suffix in (".md", ".csv", ".json"):
            assert (report_dir / "tables" / f"{stem}{suffix}").stat().st_size > 0
        frame = pd.read_csv(report_dir / "tables" / f"{stem}.csv")
        # the paper's layout: Table 2's "Random seeds" is the single models, Table 3's the
        # ensemble
        first = "Random seeds" if stem == "table2" else "Random seeds (ensemble of 2)"
        assert frame["Method"].iloc[0] == first
        assert frame["Method"].iloc[-1].startswith("Reliability ceiling")
    assert list(json.loads((report_dir / "tables" / "cells.json").read_text())[0]) [:3] == \
        ["table", "target", "row_key"]


def test_cli_names_missing_and_corrupt_trials_and_reports_the_rest(
        sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    broken = tmp_path / "broken"
    shutil.copytree(sweep_dir / "trials", broken / "trials")
    shutil.copy(sweep_dir / "sweep.json", broken / "sweep.json")
    (broken / "trials" / "kld__t0.parquet").unlink()
    mse = broken / "trials" / "mse__t0.parquet"
    mse.write_bytes(mse.read_bytes()[: mse.stat().st_size // 2])
    rc = main([str(broken), "--n-boot", "0", "--reliability-repeats", "10",
               "--reliability-boot", "10", "--summary-reliability-repeats", "10",
               "--summary-reliability-boot", "10", "--wandb"])
    assert rc == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    runs = list((tmp_path / "wandb").rglob("offline-run-*"))
    assert len(runs) == 1 and any(p.suffix == ".wandb" for p in runs[0].rglob("*"))
    assert path == broken / "report" / "report.md"
    text = path.read_text()
    assert "trials/mse__t0.parquet" in text and "kld seeds [0, 1]" in text
    assert "mse seeds [0, 1]" in text
    problems = pd.read_csv(path.parent / "tables" / "problems.csv")
    assert set(problems["source"]) >= {"trials/mse__t0.parquet", "kld seeds [0, 1]"}
    cells = pd.read_csv(path.parent / "tables" / "cells.csv")
    assert {"nll", "seeds", "mc_dropout"} <= set(cells["row_key"])
    assert not {"mse", "kld"} & set(cells["row_key"])


def test_wandb_summary_offline(report_md: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    report_dir = report_md.parent
    tables = {"table2": pd.read_csv(report_dir / "tables" / "table2.csv")}
    figures = {p.stem: p for p in (report_dir / "figures").glob("*.png")}
    run_dir = log_summary(report_dir, tables, figures, {"seeds": list(SEEDS)})
    assert run_dir.is_relative_to(tmp_path / "wandb")
    assert run_dir.name.startswith("offline-run-")
    assert any(p.suffix == ".wandb" and p.stat().st_size > 0 for p in run_dir.rglob("*"))
    logged = list(run_dir.rglob("*.png"))
    assert len(logged) == len(figures)


def test_paired_comparisons_cover_every_method_against_every_baseline(data: ReportData) -> None:
    comp = data.comparisons
    t3 = comp[comp["table"] == "table3"]
    methods = {"seeds", "mc_dropout", "laplace", *TWO_OUTPUT,
               *(f"ensemble_{m}" for m in TWO_OUTPUT)}
    methods |= {f"{m}_conformal" for m in methods}
    for baseline in ("baseline_constant_sd", "baseline_sd_from_mean", "baseline_ridge"):
        assert set(t3.loc[t3["row_b"] == baseline, "row_a"]) == methods
    # a calibrated row is compared with the row it calibrates: r unchanged, R² not
    twin = t3[(t3["row_a"] == "kld_conformal") & (t3["row_b"] == "kld")]
    assert twin.loc[twin["metric"] == "pearson", "difference"].abs().max() < 1e-12
    assert (twin.loc[twin["metric"] == "r2", "difference"].abs() > 0).all()
    line = t3[(t3["row_a"] == "nll") & (t3["row_b"] == "baseline_ridge")
              & (t3["dimension"] == "arousal") & (t3["metric"] == "r2")].iloc[0]
    expected = (_cell(data, "table3", "nll", "arousal", "r2")["value"]
                - _cell(data, "table3", "baseline_ridge", "arousal", "r2")["value"])
    assert line["difference"] == pytest.approx(expected)
    assert line["ci_low"] <= line["ci_high"] and 0 < line["p_bootstrap"] <= 1
    assert line["n_boot"] == SETTINGS.n_boot
    # per-seed pairs carry the seed-paired test (NaN p with 2 seeds: too few pairs)
    seed_pair = comp[(comp["row_a"] == "nll") & (comp["row_b"] == "mse")].iloc[0]
    assert seed_pair["n_seed_pairs"] == len(SEEDS) and np.isnan(seed_pair["p_seeds"])


def test_reading_quotes_this_runs_numbers(report_md: Path, data: ReportData) -> None:
    text = report_md.read_text()
    ceil = data.ceilings.set_index(["target", "dimension", "metric"])
    for dim in schema.DIMENSIONS:
        sd_ceiling = ceil.loc[("sd", dim, "pearson"), "ceiling"]
        assert f"SD, {dim}:" in text and f"ceiling is {sd_ceiling:.3f}" in text
        best_r2 = data.cells[(data.cells["table"] == "table2") & (data.cells["metric"] == "r2")
                             & (data.cells["dimension"] == dim)
                             & (data.cells["group"] != "baseline")]["value"].max()
        assert f"({best_r2:.3f}, bootstrap" in text


def test_cells_agree_with_the_scores_each_trial_recorded(sweep_dir: Path, data: ReportData
                                                         ) -> None:
    """run_trial records its test scores (metrics 'test/<method>/<dim>/<target>_<score>',
    mean over seeds) through mer_uq.scores, as the report does: every cell and rating
    score both give must agree, under the same names."""
    recorded: dict[str, float] = {}
    for path in (sweep_dir / "trials").glob("*.parquet"):
        meta = json.loads(pq.read_schema(path).metadata[b"mer_uq.trial"])
        recorded.update({k: v for k, v in meta["metrics"].items() if k.startswith("test/")})
    scores = data.scores.set_index(["row_key", "dimension", "score"])["value"]
    compared = 0
    for key, value in recorded.items():
        _, method, dim, score = key.split("/")
        row = {"seeds_ensemble": "seeds", "seeds": "seeds_single"}.get(method, method)
        target, _, metric = score.partition("_")
        if target in ("mean", "sd"):
            table = "table2" if target == "mean" else "table3"
            assert _cell(data, table, row, dim, metric)["value"] == pytest.approx(value), key
            compared += 1
        else:
            assert target == "rating", key
            assert scores[(row, dim, metric)] == pytest.approx(value), key
            compared += 1
    assert compared >= 60


def test_a_single_seed_sweep_still_reports(sweep_dir: Path, tmp_path: Path) -> None:
    """One seed: no ensembles and no SD over seeds, but every per-seed row is reported."""
    single = tmp_path / "single"
    (single / "trials").mkdir(parents=True)
    for path in (sweep_dir / "trials").glob("*.parquet"):
        frame = pd.read_parquet(path)
        _write_trial(single / "trials" / path.name, frame[frame["seed"] == 0], {})
    config = json.loads((sweep_dir / "sweep.json").read_text())
    (single / "sweep.json").write_text(json.dumps({**config, "seeds": [0]}))
    data = compute_report_data(single, AnalysisSettings(n_boot=0, reliability_repeats=10,
                                                        reliability_boot=10,
                                                        summary_reliability_repeats=10,
                                                        summary_reliability_boot=10))
    keys = set(data.cells["row_key"])
    assert {"seeds_single", "mc_dropout", *TWO_OUTPUT} <= keys
    assert not any(k.startswith("ensemble_") for k in keys) and "seeds" not in keys
    assert data.cells["sd_over_seeds"].isna().all()
    assert any("one seed only" in p.reason for p in data.problems)
    md = write_report_files(data).markdown.read_text()
    assert "NLL" in md and "Random seeds, single models" in md


def test_compare_pairs_cells_and_refuses_other_test_songs(data: ReportData, sweep_dir: Path,
                                                          tmp_path: Path) -> None:
    """A folder against itself: every shared cell differs by exactly 0 with a [0, 0]
    paired interval; a folder with other test songs is refused; the CLI says so in one
    line."""
    import dataclasses

    from analysis.compare import FolderMismatch, compare_data, main

    frame = compare_data([data, data], ["a", "b"])
    assert len(frame) > 0
    assert (frame["difference"].dropna() == 0).all()
    assert frame["difference"].notna().any()
    with_ci = frame.dropna(subset=["ci_low"])
    assert len(with_ci) > 0
    assert (with_ci["ci_low"] == 0).all() and (with_ci["ci_high"] == 0).all()
    other = dataclasses.replace(data, song_ids=data.song_ids[1:])
    with pytest.raises(FolderMismatch, match="test songs differ"):
        compare_data([data, other], ["a", "b"])
    assert main([str(sweep_dir)]) == 2
    assert main([str(sweep_dir), str(tmp_path / "missing")]) == 2


def test_data_summary_on_its_thread_equals_the_serial_one_and_fails_first(
        sweep_dir: Path, data: ReportData, monkeypatch: pytest.MonkeyPatch) -> None:
    """compute_report_data computes the data summary on a second thread: the summary is
    the serial function's, to the bit, and an error of the summary is the one raised even
    when the rest fails too (as when the summary ran first); an error of the rest alone is
    raised as it is."""
    from analysis.compute import pipeline
    from mer_uq.data.summary import summarise

    serial = summarise(load_deam(), n_repeats=SETTINGS.summary_reliability_repeats,
                       n_boot=SETTINGS.summary_reliability_boot, seed=SETTINGS.seed)
    assert data.data_summary == serial

    def summary_fails(*_):
        raise ValueError("the summary's error")

    def rest_fails(*_):
        raise RuntimeError("the rest's error")

    monkeypatch.setattr(pipeline, "_test_split_numbers", rest_fails)
    with pytest.raises(RuntimeError, match="the rest's error"):
        compute_report_data(sweep_dir, SETTINGS)
    monkeypatch.setattr(pipeline, "_data_summary", summary_fails)
    with pytest.raises(ValueError, match="the summary's error"):
        compute_report_data(sweep_dir, SETTINGS)
    monkeypatch.undo()
    monkeypatch.setattr(pipeline, "_data_summary", summary_fails)
    with pytest.raises(ValueError, match="the summary's error"):
        compute_report_data(sweep_dir, SETTINGS)


def test_write_report_draws_the_figures_beside_the_summary_to_the_same_bytes(
        sweep_dir: Path, written: ReportWritten, tmp_path: Path) -> None:
    """write_report draws the main figures while the data summary's thread finishes
    (computing_report); the files are those write_report_files draws from the finished
    numbers, byte for byte, and so are the tables."""
    from analysis.write.report_files import write_report

    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("report"))
    again = write_report(copy, settings=SETTINGS)
    assert set(again.figures) == set(written.figures)
    for name, path in written.figures.items():
        assert again.figures[name].read_bytes() == path.read_bytes(), name
    for stem, path in written.tables.items():
        assert again.tables[stem].read_bytes() == path.read_bytes(), stem
