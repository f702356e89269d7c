"""Nothing silently wrong: a sweep folder's record, its trial files and its report are
trusted only after the checks every reader shares; a bad input is one line and exit 2.

No Ray here: trial files are written the way mer_uq.trial's writer writes them, from
generated predictions over the bundled split's songs, and the CLIs stop before Ray starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_uq import sweep_lock, trial_check
from mer_uq.folder_swap import staged_folder
from mer_uq.methods import METHODS, Uncertainty
from mer_uq.sweep_folder import (
    LOCK_FILE,
    SweepFolderError,
    read_sweep_config,
    read_sweep_json,
    refuse_contract_path,
    write_sweep_json,
    write_trial_parquet,
)
from mer_uq.sweep_record import SweepRecordError, validate_sweep_record
from sweep.cli import parse_options
from sweep.experiment import ProgressPrinter
from sweep.folder_guards import ignored_resume_flags
from sweep.run import main as sweep_main

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1]
MODEL = {"hidden_width": 128, "depth": 2, "dropout": 0.5}
TRAIN = {"epochs": 2, "steps_per_epoch": 8, "batch_size": 32, "lr": 0.001, "patience": 3,
         "lr_factor": 0.9, "min_lr": 1e-05, "early_stopping_patience": 10, "device": "auto",
         "cpu_threads": 1}


def _record(**changes) -> dict:
    record = {
        "deam_dir": None, "split_file": None, "fix_swap": True, "include_2015": False,
        "features": None, "feature_column": None, "allow_missing_features": False,
        "methods": ["nll", "mse"], "trainings": ["mse", "nll"], "seeds": list(SEEDS),
        "seeds_per_trial": None, "model": dict(MODEL), "train": dict(TRAIN), "mc_passes": 2,
        "trials": ["nll__seeds0-1", "mse__seeds0-1"], "created": "2026-01-01T00:00:00+00:00",
        "ratings": None, "scale": None, "songs": None, "synthetic": None, "raters": None,
        "train_fractions": None, "subsample_seed": 0,
    }
    record.update(changes)
    return record


def _songs() -> dict[str, np.ndarray]:
    from mer_uq.data.dataset import load_deam

    dataset = load_deam()
    return {split: dataset.song_ids(split) for split in ("valid", "test")}


def _frame(method: str, songs: dict[str, np.ndarray], seeds=SEEDS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    parts = []
    for seed in seeds:
        for split, ids in songs.items():
            n = ids.size
            parts.append(pd.DataFrame({
                "song_id": ids.astype(np.int64), "split": split, "method": method,
                "seed": np.int64(seed),
                "valence_mu": rng.normal(0, 0.2, n), "valence_sigma": rng.uniform(0.1, 0.3, n),
                "arousal_mu": rng.normal(0, 0.2, n), "arousal_sigma": rng.uniform(0.1, 0.3, n),
            }))
    return pd.concat(parts, ignore_index=True)


def _trial_record(training: str, songs: dict[str, np.ndarray], seeds=SEEDS) -> dict:
    return {"training": training, "seeds": list(seeds), "methods": [training],
            "model": MODEL, "train": TRAIN, "mc_passes": 2,
            "songs": {"train": 0, **{s: int(v.size) for s, v in songs.items()}},
            "metrics": {"val_loss": 1.0}}


@pytest.fixture(scope="module")
def songs() -> dict[str, np.ndarray]:
    return _songs()


@pytest.fixture()
def sweep(tmp_path: Path, songs) -> Path:
    """A finished two-method, two-seed sweep folder, as the writer leaves it."""
    root = tmp_path / "sweep"
    write_sweep_json(root, _record())
    for training in ("nll", "mse"):
        write_trial_parquet(root / "trials" / f"{training}__seeds0-1.parquet",
                            _frame(training, songs), _trial_record(training, songs))
    return root


def _expected(training: str) -> dict:
    return {"training": training, "seeds": SEEDS, "model": MODEL, "train": TRAIN,
            "mc_passes": 2, "data": None}


def _edit(sweep: Path, **changes) -> None:
    path = sweep / "sweep.json"
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def _rewrite(path: Path, change) -> None:
    from mer_uq.sweep_folder import read_trial_file

    frame, record = read_trial_file(path)
    write_trial_parquet(path, change(frame), record)


# ---------------------------------------------------------------- the sweep.json schema


@pytest.mark.parametrize(("key", "value", "says"), [
    ("seeds", "15", "'seeds' must be a list"),
    ("seeds", "0,1", "'seeds' must be a list"),
    ("seeds", None, "'seeds' must be a list"),
    ("seeds", [0, 1.7], "'seeds' item 1: must be an integer"),
    ("seeds", [0, 10**30], "'seeds' item 1: must be in [0, 2147483647]"),
    ("seeds", [0, 0], "'seeds' must hold distinct values"),
    ("seeds", [], "'seeds' must not be empty"),
    ("model", [], "'model' must be an object of FCNConfig settings"),
    ("train", [], "'train' must be an object of TrainConfig settings"),
    ("include_2015", "false", "'include_2015' must be true or false"),
    ("fix_swap", 1, "'fix_swap' must be true or false"),
    ("methods", ["nll", "bogus"], "unknown method 'bogus'"),
    ("mc_passes", 0, "'mc_passes' must be in [1,"),
    ("train", {**TRAIN, "epochs": 10**30}, "'train' epochs must be in [0, 2147483647]"),
    ("train", {**TRAIN, "bogus": 1}, "'train' has unknown setting(s) ['bogus']"),
    ("train", {**TRAIN, "lr": -1.0}, "'train' lr must be a finite number in [0.0"),
    ("model", {**MODEL, "dropout": 1.5}, "'model' FCNConfig.dropout must be in"),
    ("typo_key", 1, "unknown key(s) ['typo_key']"),
])
def test_a_bad_record_is_one_line_naming_the_key(sweep: Path, key, value, says) -> None:
    _edit(sweep, **{key: value})
    with pytest.raises(SweepFolderError) as resume:
        read_sweep_json(sweep)
    with pytest.raises(SweepFolderError) as report:
        read_sweep_config(sweep)
    for err in (resume, report):
        assert says in str(err.value) and str(sweep / "sweep.json") in str(err.value)
        assert "\n" not in str(err.value)


def test_the_writer_writes_what_every_reader_accepts(sweep: Path) -> None:
    assert read_sweep_json(sweep)["seeds"] == SEEDS
    assert read_sweep_config(sweep) == (read_sweep_json(sweep), None)
    with pytest.raises(SweepRecordError, match="'seeds'"):
        write_sweep_json(sweep, _record(seeds="15"))
    assert validate_sweep_record(_record(), "x") == _record()


def test_resume_and_report_refuse_a_bad_record_with_exit_2(sweep: Path) -> None:
    _edit(sweep, include_2015="false")
    for module, args in (("sweep.run", ["--resume", str(sweep), "--no-report"]),
                         ("analysis.report", [str(sweep)])):
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "'include_2015' must be true or false" in lines[0]
    assert not (sweep / "report").exists()


# ---------------------------------------------------------------- trial files


def test_which_methods_have_a_row_spread_comes_from_the_registry() -> None:
    for name, spec in METHODS.items():
        assert trial_check.has_row_spread(name) is (
            spec.uncertainty is not Uncertainty.SEED_ENSEMBLE)
    assert trial_check.has_row_spread("seeds") is False
    assert trial_check.has_row_spread("mc_dropout") is True
    assert trial_check.has_row_spread("no_such_method") is None


def test_a_good_trial_file_is_trusted(sweep: Path) -> None:
    path = sweep / "trials" / "nll__seeds0-1.parquet"
    assert trial_check.trial_file_problem(path, _expected("nll")) is None


@pytest.mark.parametrize(("change", "says"), [
    (lambda f: f.assign(valence_sigma=f["valence_sigma"].where(f.index >= 10, np.nan)),
     "nll: valence_sigma is not a finite value > 0 in 10 row(s)"),
    (lambda f: f.assign(valence_sigma=f["valence_sigma"].where(f.index >= 10, np.inf)),
     "nll: valence_sigma is not a finite value > 0 in 10 row(s)"),
    (lambda f: f.assign(arousal_sigma=-f["arousal_sigma"]),
     "arousal_sigma is not a finite value > 0"),
    (lambda f: f.assign(valence_mu=f["valence_mu"].where(f.index != 3, np.nan)),
     "non-finite predicted means in 1 row(s)"),
    (lambda f: f.drop(columns=["valence_sigma"]), "missing columns ['valence_sigma']"),
    (lambda f: f[f["song_id"] != f.loc[f["split"] == "test", "song_id"].iloc[0]],
     "test songs, its record says"),
    (lambda f: pd.concat([f, f.iloc[:1]]), "appears more than once"),
    (lambda f: f[f["seed"] == 0], "rows hold seeds [0], its record says [0, 1]"),
])
def test_a_trial_file_that_breaks_the_writers_guarantees_is_rerun_and_not_reported(
        sweep: Path, change, says) -> None:
    from analysis.read.sweep_results import load_sweep

    path = sweep / "trials" / "nll__seeds0-1.parquet"
    _rewrite(path, change)
    problem = trial_check.trial_file_problem(path, _expected("nll"))
    assert problem is not None and says in problem
    loaded = load_sweep(sweep)
    assert loaded.loaded_files == ["trials/mse__seeds0-1.parquet"]
    reasons = {p.source: p.reason for p in loaded.problems}
    assert says in reasons["trials/nll__seeds0-1.parquet"]
    assert "nll seeds [0, 1]" in reasons


def test_a_seeds_row_without_sigma_is_fine(songs) -> None:
    frame = _frame("seeds", songs).assign(valence_sigma=np.nan, arousal_sigma=np.nan)
    assert trial_check.frame_problem(frame, {"seeds": SEEDS}) is None
    assert "valence_sigma" in trial_check.frame_problem(frame.assign(method="mc_dropout"))


def test_a_song_missing_from_every_seed_is_caught_against_the_plan(songs) -> None:
    gone = int(songs["test"][0])
    frame = _frame("mse", songs)
    frame = frame[frame["song_id"] != gone]
    assert trial_check.frame_problem(frame) is None  # consistent in itself
    problem = trial_check.frame_problem(frame, planned_songs=songs)
    assert problem is not None and f"lacks 1 planned test song(s), e.g. [{gone}]" in problem


def test_symbolic_links_are_never_trusted(sweep: Path, tmp_path: Path, songs) -> None:
    from analysis.read.sweep_results import load_sweep

    other = tmp_path / "other.parquet"
    write_trial_parquet(other, _frame("nll", songs, range(15)),
                        _trial_record("nll", songs, range(15)))
    path = sweep / "trials" / "nll__seeds0-1.parquet"
    path.unlink()
    path.symlink_to(other)
    assert "symbolic link" in trial_check.trial_file_problem(path, _expected("nll"))
    reasons = {p.source: p.reason for p in load_sweep(sweep).problems}
    assert "symbolic link" in reasons["trials/nll__seeds0-1.parquet"]
    # a copy (not a link) of another sweep's 15-seed file is not this plan's either
    path.unlink()
    shutil.copyfile(other, path)
    reasons = {p.source: p.reason for p in load_sweep(sweep).problems}
    assert "seeds [2, 3, 4, 5, 6] are not planned" in reasons["trials/nll__seeds0-1.parquet"]


def test_a_linked_trials_folder_is_refused_before_anything_is_written(sweep: Path,
                                                                      tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (sweep / "trials").rename(elsewhere)
    (sweep / "trials").symlink_to(elsewhere)
    before = {p.name: p.stat().st_mtime_ns for p in elsewhere.iterdir()}
    with (pytest.raises(SweepFolderError, match="trials is a symbolic link"),
          sweep_lock.holding(sweep)):
        pass
    assert sweep_main(["--resume", str(sweep), "--no-report"]) == 2
    assert {p.name: p.stat().st_mtime_ns for p in elsewhere.iterdir()} == before


# ---------------------------------------------------------------- the report


def test_the_first_screen_says_which_methods_are_missing_and_why(sweep: Path) -> None:
    from analysis.compute.pipeline import AnalysisSettings
    from analysis.report import write_report

    _rewrite(sweep / "trials" / "nll__seeds0-1.parquet",
             lambda f: f.assign(valence_sigma=-f["valence_sigma"]))
    settings = AnalysisSettings(n_boot=0, reliability_repeats=2, reliability_boot=2,
                                summary_reliability_repeats=2, summary_reliability_boot=2)
    report = write_report(sweep, settings=settings).markdown
    head = report.read_text().split("## ")[0]
    assert "Not in the tables as planned" in head
    assert "nll: MISSING from the tables" in head and "valence_sigma" in head
    problems = pd.read_csv(report.parent / "tables" / "problems.csv")
    assert "method nll" in set(problems["source"])
    cells = pd.read_csv(report.parent / "tables" / "cells.csv")
    assert "mse" in set(cells["row_key"]) and "nll" not in set(cells["row_key"])


def test_staged_folder_keeps_the_old_folder_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.mkdir()
    (target / "report.md").write_text("old")
    with pytest.raises(OSError, match="disk full"), staged_folder(target) as stage:
        (stage / "table.csv").write_text("new")
        raise OSError("disk full")
    assert [p.name for p in target.iterdir()] == ["report.md"]
    assert (target / "report.md").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    with staged_folder(target) as stage:
        (stage / "report.md").write_text("new")
    assert (target / "report.md").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


# ---------------------------------------------------------------- the folder, the flags


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_folder_in_use_is_refused_and_a_stale_lock_taken_over(
        sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (sweep / LOCK_FILE).write_text(json.dumps({"pid": holder.pid,
                                                   "host": socket.gethostname()}))
        assert sweep_main(["--resume", str(sweep), "--no-report"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"is in use by PID {holder.pid}" in err[0]
    finally:
        holder.kill()
        holder.wait()
    (sweep / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(),
                                               "host": socket.gethostname()}))
    with sweep_lock.holding(sweep) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not (sweep / LOCK_FILE).exists()


@pytest.mark.parametrize(("argv", "says"), [
    (["--out", "{sweep}", "--methods", "nll"], "already holds trial results; use --resume"),
    (["--out", "{record_only}", "--methods", "nll"], "already holds a sweep (sweep.json); "
                                                     "continue it with --resume"),
    (["--out", "{foreign}", "--methods", "nll"], "is not empty (report, sweep.json) and is not"),
    (["--resume", "{sweep}", "--out", "x", "--methods", "kld", "--seeds", "5", "--epochs", "3"],
     "would ignore --methods, --seeds, --out, --epochs"),
    (["--out", "{tmp}/" + "a" * 300], "is 300 bytes; file systems allow 255"),
])
def test_out_and_resume_refuse_what_they_would_overwrite_or_ignore(
        sweep: Path, tmp_path: Path, argv, says, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "foreign"
    (foreign / "report").mkdir(parents=True)
    (foreign / "sweep.json").write_text('{"x": 1}')
    (foreign / "report" / "report.md").write_text("keep me")
    record_only = tmp_path / "record_only"  # a sweep interrupted before its first trial
    record_only.mkdir()
    shutil.copy(sweep / "sweep.json", record_only / "sweep.json")
    argv = [a.format(sweep=sweep, foreign=foreign, tmp=tmp_path, record_only=record_only)
            for a in argv]
    assert sweep_main([*argv, "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0].replace("\n", ""), err
    assert (foreign / "report" / "report.md").read_text() == "keep me"
    if "would ignore" in says:  # the order of the dataclass, as the user reads it
        assert ignored_resume_flags(parse_options(argv)) == ["--methods", "--seeds", "--out",
                                                            "--epochs"]


def test_a_non_utf8_out_and_a_read_only_temp_folder_are_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    bad = os.fsdecode(os.fsencode(str(tmp_path)) + b"/bad\xff")
    assert sweep_main(["--out", bad, "--methods", "nll", "--no-report"]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("TMPDIR", str(not_a_folder))
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    assert sweep_main(["--out", str(tmp_path / "new"), "--methods", "nll", "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "temporary folder" in err[0] and "TMPDIR" in err[0]
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(not_a_folder))
    assert sweep_main(["--out", str(tmp_path / "new"), "--methods", "nll", "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "home folder" in err[0] and "set HOME" in err[0]


def test_no_command_writes_over_a_sweeps_own_files(sweep: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.compare import main as compare_main

    record = (sweep / "sweep.json").read_text()
    twin = tmp_path / "twin"
    shutil.copytree(sweep, twin)
    for target in (sweep / "sweep.json", sweep / "trials" / "x.csv", sweep / "report" / "a.csv"):
        with pytest.raises(SweepFolderError, match="would write over"):
            refuse_contract_path(target, "--csv")
    refuse_contract_path(tmp_path / "long.csv", "--csv")  # elsewhere: fine
    assert compare_main([str(sweep), str(twin), "--csv", str(sweep / "sweep.json")]) == 2
    assert "would write over" in capsys.readouterr().err
    assert (sweep / "sweep.json").read_text() == record


# ---------------------------------------------------------------- CLI ranges, ETA, disk


@pytest.mark.parametrize("argv", [
    ["mer_uq.data", "--repeats", "0"], ["mer_uq.data", "--repeats", "-1"],
    ["mer_uq.data", "--boot", "0"], ["mer_uq.data", "--boot", "-1"],
    ["analysis.report", "x", "--reliability-repeats", "0"],
    ["analysis.report", "x", "--reliability-boot", "0"],
    ["analysis.compare", "a", "b", "--n-boot", "-1"],
])
def test_resampling_counts_are_checked_on_the_command_line(
        argv, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    module = importlib.import_module("mer_uq.data.__main__" if argv[0] == "mer_uq.data"
                                     else argv[0])
    with pytest.raises(SystemExit) as stop:
        module.main(argv[1:])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[-2]}: must be >= " in err and "Traceback" not in err


@pytest.mark.parametrize("header", ["valence,arousal,valence", "Valence,arousal, valence"])
def test_a_ratings_column_given_twice_is_refused(tmp_path: Path, header: str) -> None:
    from mer_uq.data.errors import DeamDataError
    from mer_uq.data.generic import RatingScale, read_ratings_table

    path = tmp_path / "ratings.csv"
    path.write_text(f"song_id,rater,{header}\n1,a,1,2,3\n")
    with pytest.raises(DeamDataError, match="given more than once") as err:
        read_ratings_table(path, RatingScale(1, 9, 5))
    assert str(path) in str(err.value)


def test_the_eta_is_unknown_until_a_trial_finishes(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    printer = ProgressPrinter(total=1, max_epochs=2, interval_s=0.0)
    trial = SimpleNamespace(trial_id="t0")
    printer.on_trial_start(0, [], trial)
    printer.on_trial_result(0, [], trial, {"epoch": 2})  # last epoch, still writing
    assert printer.eta_seconds() is None
    assert all("ETA unknown" in line for line in capsys.readouterr().out.splitlines())
    printer.on_trial_complete(0, [], trial)
    assert "ETA 0m00s" in capsys.readouterr().out


def test_tune_failing_on_a_full_disk_ends_in_the_resume_line(
        sweep: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tune reading back its own state from a full disk raises EOFError; the driver says
    so in one line and ends with the failed-trials line that names --resume."""
    import sweep.experiment as experiment
    import sweep.seed_sweep as seed_sweep

    def disk_full(*args, **kwargs):
        raise EOFError("Ran out of input")

    monkeypatch.setattr(seed_sweep, "connect", lambda address: object())
    monkeypatch.setattr(seed_sweep, "disconnect", lambda connection: None)
    monkeypatch.setattr(seed_sweep, "check_cluster", lambda *args: None)
    monkeypatch.setattr(experiment, "make_trainable", lambda *args: None)
    monkeypatch.setattr(experiment, "run_experiment", disk_full)
    (sweep / "trials" / "mse__seeds0-1.parquet").unlink()
    record = (sweep / "sweep.json").read_text()
    assert sweep_main(["--resume", str(sweep), "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "Ray Tune stopped (EOFError: Ran out of input); is the disk full?" in err
    assert (f"1 trial(s) failed after retries: mse__seeds0-1; rerun with --resume {sweep}"
            in err)
    assert (sweep / "sweep.json").read_text() == record
    assert not (sweep / LOCK_FILE).exists()
