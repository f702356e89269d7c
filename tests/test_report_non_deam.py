"""Reports on data the paper never saw: a generic ratings table and synthetic data.

The published numbers are DEAM's, so such a report must not compare with them: its opening
names the data it ran on, one line says why nothing is compared, and no paper row, finding,
column value, vs-paper table or readout audit appears; ``python -m analysis.audit`` refuses
the folder in one line. mer_uq.sources.data_source is the one decision, checked here on the
three kinds of record. Small real sweep folders (mer_uq.trial.run_trial, no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.audit import main as audit_main
from analysis.compute.pipeline import AnalysisSettings, compute_report_data
from analysis.present.table_layout import PAPER_LINE
from analysis.read.paper_tables import paper_reference
from analysis.write.report_files import ReportWritten, write_report_files
from mer_uq.data.features import save_features
from mer_uq.data.generic import export_generic
from mer_uq.model import FCNConfig
from mer_uq.sources import (
    DATA_SOURCES,
    DEAM,
    GENERIC,
    SYNTHETIC,
    data_source,
    describe_data,
    load_feature_table,
    load_trained_dataset,
)
from mer_uq.synthetic import make_synthetic
from mer_uq.training import TrainConfig
from mer_uq.trial import TrialSpec, run_trial

SEEDS = (0, 1)
SETTINGS = AnalysisSettings(n_boot=30, reliability_repeats=5, reliability_boot=10,
                            summary_reliability_repeats=5, summary_reliability_boot=10)
SYNTHETIC_SETTINGS = {"n_songs": 240, "n_features": 8, "n_raters": 6, "sd_strength": 1.0,
                      "seed": 3}
PAPER_COLUMNS = ("paper_method", "paper_value", "paper_sd", "paper_text", "difference",
                 "paper_in_ci", "ours_below_zero", "agrees")
BASE_RECORD = {"deam_dir": None, "split_file": None, "fix_swap": True, "include_2015": False,
               "features": None, "feature_column": None, "methods": ["nll"],
               "trainings": ["nll"], "seeds": list(SEEDS), "model": {"hidden_width": 8},
               "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 16},
               "mc_passes": 4, "created": "test"}


def _sweep(root: Path, record: dict) -> Path:
    """A sweep folder of one NLL trial trained on the data ``record`` names."""
    (root / "trials").mkdir(parents=True)
    (root / "sweep.json").write_text(json.dumps(record))
    spec = TrialSpec(training="nll", seeds=SEEDS, model=FCNConfig(hidden_width=8),
                     train=TrainConfig(epochs=1, steps_per_epoch=3, batch_size=16,
                                       device="cpu"), mc_passes=4)
    result = run_trial(spec, load_trained_dataset(record), load_feature_table(record))
    table = pa.Table.from_pandas(result.predictions, preserve_index=False)
    meta = {"training": "nll", "metrics": result.metrics}
    pq.write_table(table.replace_schema_metadata({"mer_uq.trial": json.dumps(meta)}),
                   root / "trials" / "nll__t0.parquet")
    return root


def _generic_record(folder: Path) -> dict:
    """Generic-format files of a small dataset (synthetic songs written as a ratings table,
    a song table, a split and a feature Parquet) and the record of a sweep on them."""
    dataset, features = make_synthetic(n_songs=200, n_features=8, n_raters=5, seed=7)
    files = export_generic(dataset, folder)
    feature_file = save_features(folder / "features.parquet", features.song_ids,
                                 {"features": features.matrix})
    return {**BASE_RECORD, "ratings": str(files["ratings"]),
            "scale": json.loads(files["scale"].read_text()), "songs": str(files["songs"]),
            "split_file": str(files["split"]), "features": str(feature_file)}


@pytest.fixture(scope="module", params=[GENERIC, SYNTHETIC])
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[dict, ReportWritten]:
    root = tmp_path_factory.mktemp(request.param)
    record = (_generic_record(root / "data") if request.param == GENERIC
              else {**BASE_RECORD, "synthetic": SYNTHETIC_SETTINGS})
    data = compute_report_data(_sweep(root / "sweep", record), SETTINGS)
    assert data.paper is None
    return record, write_report_files(data)


def test_data_source_of_the_three_kinds_of_record(tmp_path: Path) -> None:
    deam_variants = [{}, BASE_RECORD, {**BASE_RECORD, "fix_swap": False},
                     {**BASE_RECORD, "include_2015": True, "split_file": "my_split.csv"},
                     {"deam_dir": "/data/DEAM"}]
    for record in deam_variants:
        assert data_source(record) == DEAM
        assert paper_reference(record) is not None  # every DEAM variant meets the paper
    assert describe_data({}) == "DEAM 2013+2014 (label swap corrected)"
    assert describe_data({"include_2015": True, "fix_swap": False}) == \
        "DEAM 2013-2015 (labels as shipped, swap kept)"
    generic = {**BASE_RECORD, "ratings": "/d/ratings.csv", "songs": "/d/songs.csv",
               "scale": {"min": 1.0, "max": 9.0, "neutral": 5.0}}
    assert data_source(generic) == GENERIC and paper_reference(generic) is None
    assert describe_data(generic) == ("generic ratings table /d/ratings.csv (scale 1-9, "
                                      "neutral 5), songs /d/songs.csv")
    synthetic = {**BASE_RECORD, "synthetic": SYNTHETIC_SETTINGS}
    assert data_source(synthetic) == SYNTHETIC and paper_reference(synthetic) is None
    assert describe_data(synthetic).startswith("synthetic data")
    assert "n_songs=240" in describe_data(synthetic)
    assert sorted(DATA_SOURCES) == sorted({DEAM, GENERIC, SYNTHETIC})
    # the loader takes the same decision: the synthetic record gives its 240 songs
    assert len(load_trained_dataset(synthetic).songs) == 240


def test_report_describes_its_data_and_never_meets_the_paper(
        written: tuple[dict, ReportWritten]) -> None:
    record, report = written
    text = report.markdown.read_text()
    opening = text.split("\n\n")[1]
    assert opening.startswith(describe_data(record)) and "DEAM" not in opening
    why = ("Not compared with the published paper: its numbers are DEAM's, and this sweep "
           f"ran on {describe_data(record)}.")
    assert text.count(why) == 1 and text.index(why) < text.index("Table 2")
    for absent in (PAPER_LINE, "✓", "✗", "Ours vs published", "Published numbers",
                   "the paper's value lies inside", "Best-agreeing hypothesis"):
        assert absent not in text, absent
    assert "## Readout audit\n\nNot run: the readout audit compares Table 3 with the " \
           "paper's, whose numbers are DEAM's" in text
    tables = report.report_dir / "tables"
    for stem in ("table2_vs_paper", "table3_vs_paper", "readout_audit",
                 "readout_audit_summary"):
        assert not (tables / f"{stem}.csv").exists() and stem not in report.tables
    cells = pd.read_csv(tables / "cells.csv")
    assert set(PAPER_COLUMNS) <= set(cells.columns) and cells[list(PAPER_COLUMNS)].isna().all(
        axis=None)
    for stem in ("table2", "table3"):
        assert PAPER_LINE not in set(pd.read_csv(tables / f"{stem}.csv")["Method"])


def test_audit_cli_refuses_other_data_in_one_line(written: tuple[dict, ReportWritten],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    record, report = written
    sweep_dir = report.report_dir.parent
    assert audit_main([str(sweep_dir), "--n-boot", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: {sweep_dir}: ")
    assert "DEAM's" in err and describe_data(record) in err


def test_commands_refuse_data_gone_since_the_sweep_in_one_line(
        written: tuple[dict, ReportWritten], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep whose data moved or broke after it ran (a ratings table gone, a song left
    with one rating): the report and the comparison say so in one line naming the file,
    exit 2, and write nothing."""
    import shutil

    from analysis.compare import main as compare_main
    from analysis.report import main as report_main

    record, report = written
    if data_source(record) != GENERIC:
        pytest.skip("a synthetic sweep reads no data file")
    source = report.report_dir.parent
    gone = tmp_path / "gone"
    shutil.copytree(source, gone, ignore=shutil.ignore_patterns("report"))
    missing = tmp_path / "moved.csv"
    (gone / "sweep.json").write_text(json.dumps({**record, "ratings": str(missing)}))
    one_rating = tmp_path / "one_rating.csv"
    ratings = pd.read_csv(record["ratings"])
    first = ratings["song_id"].iloc[0]
    pd.concat([ratings[ratings["song_id"] == first].head(1),
               ratings[ratings["song_id"] != first]]).to_csv(one_rating, index=False)
    broken = tmp_path / "broken"
    shutil.copytree(source, broken, ignore=shutil.ignore_patterns("report"))
    (broken / "sweep.json").write_text(json.dumps({**record, "ratings": str(one_rating)}))
    for folder, named in ((gone, str(missing)), (broken, str(one_rating))):
        assert report_main([str(folder)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and named in err, err
        assert not (folder / "report").exists()
    assert compare_main([str(gone), str(source)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(missing) in err, err
