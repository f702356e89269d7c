"""The readout audit on a small real sweep folder: its 'sigma' readout is the report's own
Table 3, every other readout is recomputed here with scipy from the trial Parquets, the
verdict counts follow from the cells, and the CLI reads one or two folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from analysis.audit import main
from analysis.compute.pipeline import AnalysisSettings, ReportData, compute_report_data
from analysis.compute.readout_audit import READOUTS, audit_cells, run_audit, summarise_audit
from analysis.present.readout_audit_section import best_line
from analysis.write.report_files import write_report_files
from mer_uq import schema
from mer_uq.data.dataset import load_deam
from mer_uq.data.features import load_features
from mer_uq.methods import methods_of_training
from mer_uq.model import FCNConfig
from mer_uq.training import TrainConfig
from mer_uq.trial import TrialSpec, run_trial

SEEDS = (0, 1, 2)
SETTINGS = AnalysisSettings(n_boot=50, reliability_repeats=10, reliability_boot=20,
                            summary_reliability_repeats=10, summary_reliability_boot=20)
READOUT_FNS = {"sigma": lambda s: s, "sigma2": lambda s: s**2, "log_sigma": np.log,
               "neg_log_sigma": lambda s: -np.log(s), "inv_sigma": lambda s: 1 / s}


def _sweep(root: Path, trainings: tuple[str, ...], fix_swap: bool) -> Path:
    (root / "trials").mkdir(parents=True)
    dataset, features = load_deam(fix_swap=fix_swap), load_features()
    train = TrainConfig(epochs=2, steps_per_epoch=3, batch_size=16, device="cpu")
    for training in trainings:
        spec = TrialSpec(training=training, seeds=SEEDS, model=FCNConfig(hidden_width=8),
                         train=train, mc_passes=4)
        result = run_trial(spec, dataset, features)
        table = pa.Table.from_pandas(result.predictions, preserve_index=False)
        meta = {"training": training, "metrics": result.metrics}
        pq.write_table(table.replace_schema_metadata({"mer_uq.trial": json.dumps(meta)}),
                       root / "trials" / f"{training}__t0.parquet")
    config = {"deam_dir": None, "split_file": None, "fix_swap": fix_swap,
              "include_2015": False, "features": None, "feature_column": None,
              "methods": [m for t in trainings for m in methods_of_training(t)],
              "trainings": list(trainings), "seeds": list(SEEDS), "created": "test",
              "model": {"hidden_width": 8},
              "train": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 16},
              "mc_passes": 4}
    (root / "sweep.json").write_text(json.dumps(config))
    return root


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sweep(tmp_path_factory.mktemp("audit") / "corrected", ("mean", "nll"), True)


@pytest.fixture(scope="module")
def data(sweep_dir: Path) -> ReportData:
    return compute_report_data(sweep_dir, SETTINGS)


@pytest.fixture(scope="module")
def cells(data: ReportData) -> pd.DataFrame:
    from analysis.compute.bootstrap import resample_indices

    indices = resample_indices(data.song_ids.size, SETTINGS.n_boot, SETTINGS.seed)
    return audit_cells(data.rows, data.targets, indices, data.paper, "corrected labels")


def _one(frame: pd.DataFrame, **where: object) -> pd.Series:
    sel = frame
    for key, value in where.items():
        sel = sel[sel[key] == value]
    assert len(sel) == 1, where
    return sel.iloc[0]


def test_sigma_readout_is_the_reports_table3(data: ReportData, cells: pd.DataFrame) -> None:
    report = data.cells[data.cells["table"] == "table3"]
    ours = cells[cells["readout"] == "sigma"]
    assert set(ours["row_key"]) == {"seeds", "mc_dropout", "nll"}
    for line in ours.itertuples():
        cell = _one(report, row_key=line.row_key, dimension=line.dimension, metric=line.metric)
        for column in ("value", "ci_low", "ci_high"):
            assert getattr(line, column) == cell[column], (line, column)


def test_each_readout_recomputes_from_the_parquets(sweep_dir: Path, data: ReportData,
                                                   cells: pd.DataFrame) -> None:
    trials = pd.read_parquet(sweep_dir / "trials" / "nll__t0.parquet")
    test = trials[trials["split"] == "test"]
    songs = load_deam().songs.set_index("song_id").loc[data.song_ids]
    for readout in READOUTS:
        fn = READOUT_FNS[readout.name]
        for dim in schema.DIMENSIONS:
            wide = test.pivot(index="seed", columns="song_id", values=schema.PRED_SIGMA[dim])
            sigma = wide.loc[list(SEEDS), data.song_ids].to_numpy()
            y = songs[schema.TARGET_SD[dim]].to_numpy()
            expected = {
                "pearson": np.mean([stats.pearsonr(y, fn(s))[0] for s in sigma]),
                "spearman": np.mean([stats.spearmanr(y, fn(s))[0] for s in sigma]),
                "r2": np.mean([1 - np.sum((y - fn(s)) ** 2) / np.sum((y - y.mean()) ** 2)
                               for s in sigma]),
            }
            for metric, value in expected.items():
                line = _one(cells, readout=readout.name, row_key="nll", dimension=dim,
                            metric=metric)
                assert line["value"] == pytest.approx(value, abs=1e-10)
                assert line["ci_low"] <= line["ci_high"]


def test_rows_without_a_spread_head_are_the_same_under_every_readout(cells: pd.DataFrame
                                                                      ) -> None:
    fixed = cells[cells["row_key"].isin(["seeds", "mc_dropout"])]
    assert not fixed["read_out"].any()
    spread = fixed.groupby(["row_key", "dimension", "metric"])["value"].nunique()
    assert (spread == 1).all()
    assert cells[cells["row_key"] == "nll"]["read_out"].all()


def test_verdicts_and_counts_follow_from_the_cells(cells: pd.DataFrame) -> None:
    published = cells[cells["paper_text"].notna()]
    # seeds (6), mc_dropout (6) and nll (6) of the paper's Table 3, per readout
    assert published.groupby("readout").size().eq(18).all()
    for line in published.itertuples():
        if line.paper_text == "<< 0":
            assert line.ours_below_zero == (line.value < 0)
        else:
            assert line.paper_in_ci == (line.ci_low <= line.paper_value <= line.ci_high)
            assert line.same_sign == (np.sign(line.value) == np.sign(line.paper_value))
    summary = summarise_audit(cells)
    assert len(summary) == len(READOUTS)
    for line in summary.itertuples():
        mine = published[published["readout"] == line.readout]
        numeric = mine[mine["paper_text"] != "<< 0"]
        assert line.numeric_cells == 12 and line.far_below_cells == 6
        assert line.same_sign == int((numeric["same_sign"] == True).sum())  # noqa: E712
        assert line.agreeing_cells == line.paper_in_ci + line.ours_below_zero
    ranked = list(zip(summary["agreeing_cells"], summary["same_sign"], strict=True))
    assert ranked == sorted(ranked, reverse=True)
    top = summary.iloc[0]
    assert top["readout_label"] in best_line(summary)
    assert f"{top['paper_in_ci']} of {top['numeric_cells']}" in best_line(summary)


def test_report_has_the_section_with_the_hypothesis_wording(data: ReportData) -> None:
    report_md = write_report_files(data).markdown
    text = report_md.read_text()
    assert "Readout audit" in text
    assert ("a hypothesis about how a published table may have been computed, not a claim "
            "about anyone's code") in text
    assert "Best-agreeing hypothesis" in text
    written = pd.read_csv(report_md.parent / "tables" / "readout_audit.csv")
    assert set(written["readout"]) == {r.name for r in READOUTS}


def test_cli_two_label_versions_and_bad_folders(sweep_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(sweep_dir / "trials", raw / "trials")
    config = json.loads((sweep_dir / "sweep.json").read_text())
    (raw / "sweep.json").write_text(json.dumps({**config, "fix_swap": False}))
    cells, summary = run_audit([sweep_dir, raw], n_boot=20)
    assert set(summary["labels"]) == {"corrected labels", "raw labels (--keep-swap)"}
    assert len(summary) == 2 * len(READOUTS)
    out_csv = tmp_path / "audit.csv"
    assert main([str(sweep_dir), str(raw), "--n-boot", "20", "--csv", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "raw labels (--keep-swap)" in printed and "Best-agreeing hypothesis" in printed
    assert len(pd.read_csv(out_csv)) == len(cells)
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "not a sweep folder" in capsys.readouterr().err
    mean_only = tmp_path / "mean_only"
    (mean_only / "trials").mkdir(parents=True)
    shutil.copy(sweep_dir / "trials" / "mean__t0.parquet", mean_only / "trials")
    shutil.copy(sweep_dir / "sweep.json", mean_only)
    assert main([str(mean_only), "--n-boot", "0"]) == 2
    assert "no two-output method" in capsys.readouterr().err
