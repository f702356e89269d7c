"""The data axes and the other datasets through ``python -m sweep.run`` (in-process, on the
shared session Ray, short training): trial files per cell, sweep.json, resume, the report
section, a generic copy of DEAM giving DEAM's predictions, and one-line flag errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mer_uq.data import load_deam
from mer_uq.data.generic import export_generic
from mer_uq.schema import DATA_AXIS_COLUMNS
from mer_uq.sweep_folder import read_trial_record
from sweep.run import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FAST = ["--epochs", "2", "--steps-per-epoch", "3", "--mc-passes", "4"]


def stems(sweep_dir: Path) -> set[str]:
    return {p.stem for p in (sweep_dir / "trials").glob("*.parquet")}


def test_axes_sweep_files_record_resume_and_report(ray_session, tmp_path, capsys) -> None:
    out = tmp_path / "axes"
    argv = ["--methods", "mse", "--seeds", "2", "--raters", "2,all", "--train-fraction",
            "0.5,1", "--out", str(out), *FAST]
    assert main(argv) == 0
    expected = {f"mse__seeds0-1_k{k}_frac{f}_sub0" for k in ("2", "all") for f in ("0.5", "1")}
    assert stems(out) == expected
    record = json.loads((out / "sweep.json").read_text())
    assert record["raters"] == [2, None] and record["train_fractions"] == [0.5, 1.0]
    assert record["subsample_seed"] == 0 and sorted(record["trials"]) == sorted(expected)
    path = out / "trials" / "mse__seeds0-1_k2_frac0.5_sub0.parquet"
    trial = read_trial_record(path)
    assert trial["data"] == {"raters": 2, "train_fraction": 0.5, "subsample_seed": 0}
    assert "test_k/mse/valence/sd_pearson" in trial["metrics"]
    frame = pd.read_parquet(path)
    assert set(DATA_AXIS_COLUMNS) <= set(frame.columns) and (frame["n_raters_k"] == 2).all()
    everyone = pd.read_parquet(out / "trials" / "mse__seeds0-1_kall_frac1_sub0.parquet")
    assert everyone["n_raters_k"].isna().all() and (everyone["train_fraction"] == 1).all()

    report = (out / "report" / "report.md").read_text()
    assert "Data axes" in report and "Raters per song needed" in report
    for name in ("data_axes_raters.png", "data_axes_fraction.png"):
        assert (out / "report" / "figures" / name).is_file()
    curves = pd.read_csv(out / "report" / "tables" / "data_axes_curves.csv")
    assert set(curves["target"]) == {"all", "k"}
    assert len(curves[["raters", "train_fraction"]].drop_duplicates()) == 4
    needed = pd.read_csv(out / "report" / "tables" / "raters_needed.csv")
    assert set(needed["target"]) == {0.5, 0.8} and len(needed) == 8
    # the main tables score one cell only (the fullest), never a mix of cells
    per_seed = pd.read_csv(out / "report" / "tables" / "per_seed.csv")
    assert not per_seed.empty

    # resume: nothing rerun; a deleted cell is the only one rerun
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.parquet")}
    capsys.readouterr()
    (out / "trials" / "mse__seeds0-1_k2_frac1_sub0.parquet").unlink()
    assert main(["--resume", str(out), "--no-report"]) == 0
    assert "(3 already finished)" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.parquet")}
    assert set(after) == set(mtimes)
    assert all(after[n] == t for n, t in mtimes.items() if "k2_frac1" not in n)


def test_generic_copy_of_deam_gives_the_deam_predictions(ray_session, tmp_path) -> None:
    files = export_generic(load_deam(), tmp_path / "generic")
    common = ["--methods", "nll", "--seeds", "2", "--no-report", *FAST]
    assert main([*common, "--out", str(tmp_path / "deam")]) == 0
    assert main([*common, "--out", str(tmp_path / "copy"), "--ratings", str(files["ratings"]),
                 "--songs", str(files["songs"])]) == 0
    record = json.loads((tmp_path / "copy" / "sweep.json").read_text())
    assert record["scale"] == {"min": 1.0, "max": 9.0, "neutral": 5.0}
    assert record["ratings"] == str(files["ratings"].resolve())
    deam = pd.read_parquet(tmp_path / "deam" / "trials" / "nll__seeds0-1.parquet")
    copy = pd.read_parquet(tmp_path / "copy" / "trials" / "nll__seeds0-1.parquet")
    pd.testing.assert_frame_equal(deam, copy)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--synthetic", "--deam", "."], "--synthetic brings its own"),
        (["--songs", "s.csv"], "give --ratings"),
        (["--raters", "1"], "below 2"),
        (["--train-fraction", "0"], "shares in (0, 1]"),
    ],
)
def test_data_flag_errors_are_one_line(tmp_path, capsys, flags, message) -> None:
    assert main([*flags, "--out", str(tmp_path / "x"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_ratings_without_a_scale_is_one_line(tmp_path, capsys) -> None:
    ratings = tmp_path / "r.csv"
    ratings.write_text("song_id,rater,valence,arousal\n1,a,1,2\n")
    assert main(["--ratings", str(ratings), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no rating scale for" in err and "\n" not in err
