"""Hostile input and faults for ``python -m sweep.run``: every user error is one line and
exit 2 before Ray, torch or the data are touched; ``--resume`` reruns what it cannot trust;
no secret of the environment reaches any file of the run or of its Ray session."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sweep.ray_runtime import ResourceError, TrialResources, schedulability

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "2", "--steps-per-epoch", "3", "--mc-passes", "4"]

# Runs main() and then proves that neither Ray, torch nor the data modules were imported.
_PROBE = (
    "import sys; from sweep.run import main; rc = main(sys.argv[1:]); "
    "heavy = sorted({'ray', 'torch', 'sweep.inputs'} & set(sys.modules)); "
    "print('imported:', heavy, file=sys.stderr) if heavy else None; sys.exit(rc)"
)


def _run_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _PROBE, *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "error: " in lines[0], proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--methods", "bogus"], "unknown method(s) bogus"),
        (["--methods", ""], "--methods is empty"),
        (["--seeds", "0"], "--seeds must be a positive count"),
        (["--seeds", "1", "1"], "distinct"),
        (["--seeds", "-1", "3"], "seeds must be >= 0"),
        (["--max-failures", "-5"], "argument --max-failures: must be >= 0"),
        (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
        (["--search", "optuna", "--search-method", "bogus"], "unknown method(s) bogus"),
        (["--search", "grid"], "argument --search: invalid choice"),
        (["--wandb-mode", "loud"], "argument --wandb-mode: invalid choice"),
        (["--seeds-per-trial", "0"], "must be a positive integer"),
        (["--epochs", "0"], "must be a positive integer"),
        (["--features", "none.parquet"], "--features none.parquet: no such file"),
        (["--split-file", "none.csv"], "--split-file none.csv: no such file"),
        (["--config", "none.json"], "--config none.json: no such file"),
        (["--cpus-per-trial", "64"], "exceeds this machine's"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
        (["--gpus-per-trial", "0.3"], "is not 1/k"),
        (["--gpus-per-trial", "1.5"], "must be whole"),
        (["--resume", "missing-dir"], "no such folder"),
        (["--out", "a-file"], "is a file, not a folder"),
        (["--out", "a-file/sub"], "which is a file"),
        (["--address", "nonsense"], "is not 'auto' or HOST:PORT"),
    ],
)
def test_user_error_is_one_line_before_anything_heavy(tmp_path, argv, expected) -> None:
    (tmp_path / "a-file").write_text("not a folder\n")
    line = _one_error_line(_run_cli(*argv, cwd=tmp_path))
    assert expected in line
    assert not (tmp_path / "runs").exists(), "a rejected request created a run folder"


def test_resume_of_a_record_naming_an_unknown_method(tmp_path) -> None:
    record = {"deam_dir": None, "split_file": None, "fix_swap": True, "include_2015": False,
              "features": None, "feature_column": None, "methods": ["nll", "bogus"],
              "trainings": ["nll"], "seeds": [0], "model": {}, "train": {}, "mc_passes": 2,
              "created": "2026-01-01"}
    (tmp_path / "sweep.json").write_text(json.dumps(record))
    line = _one_error_line(_run_cli("--resume", str(tmp_path), cwd=tmp_path))
    assert "key 'methods'" in line and "unknown method 'bogus'" in line


def test_wandb_missing_fails_before_ray_or_sweep_json(tmp_path, monkeypatch, capsys) -> None:
    import importlib.util

    import sweep.run as run_module

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(run_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real_find_spec(name, *a))
    out = tmp_path / "sweep"
    assert run_module.main(["--methods", "nll", "--seeds", "1", "--wandb", "--out", str(out)]) == 2
    assert "--wandb needs wandb" in capsys.readouterr().err
    assert not (out / "sweep.json").exists()


def test_schedulability_against_nodes_and_node_types() -> None:
    request = TrialResources(cpus=4, gpus=1)
    small = {"CPU": 2.0}
    assert schedulability(request, [small, {"CPU": 8.0, "GPU": 1.0}], None, "x") is None
    with pytest.raises(ResourceError, match="largest node has 2 CPU, 0 GPU"):
        schedulability(request, [small], None, "x")
    with pytest.raises(ResourceError, match="no node type of its autoscaler fits"):
        schedulability(request, [small], [{"CPU": 16.0}], "x")
    note = schedulability(request, [small], [{"CPU": 16.0, "GPU": 4.0}], "x")
    assert note is not None and "wait" in note


@pytest.mark.ray
@pytest.mark.slow
def test_resume_reruns_exactly_the_truncated_trial(ray_session, tmp_path, capsys) -> None:
    from sweep.run import main

    out = tmp_path / "sweep"
    assert main(["--methods", "nll,mse", "--seeds", "1", "--out", str(out), "--no-report",
                 *FAST]) == 0
    trials = out / "trials"
    broken, intact = trials / "nll__seeds0.parquet", trials / "mse__seeds0.parquet"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    intact_mtime = intact.stat().st_mtime_ns
    capsys.readouterr()

    assert main(["--resume", str(out), "--no-report"]) == 0
    stdout = capsys.readouterr().out
    assert f"{broken}: unreadable" in stdout and "rerunning" in stdout
    assert "(1 already finished)" in stdout and "trials 1/1 done" in stdout
    assert intact.stat().st_mtime_ns == intact_mtime
    from mer_uq.sweep_folder import read_trial_record

    assert read_trial_record(broken)["training"] == "nll"


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("with_wandb", [False, True], ids=["plain", "wandb-offline"])
def test_no_secret_in_run_folder_ray_session_or_console(tmp_path, with_wandb) -> None:
    """A real driver process, starting its own Ray in a private temp dir so that the
    session folder it used is known and holds nothing of other tests."""
    if with_wandb:
        pytest.importorskip("wandb")
    planted = {name: f"planted-{name.lower()}-{secrets.token_hex(8)}" for name in (
        "WANDB_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MER_UQ_TEST_TOKEN")}
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths
    try:
        out = tmp_path / "sweep"
        argv = ["--methods", "nll", "--seeds", "1", "--out", str(out), *FAST]
        if with_wandb:
            argv += ["--wandb", "--wandb-mode", "offline"]
        env = {**os.environ, **planted, "RAY_TMPDIR": str(ray_tmp),
               "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.run([sys.executable, "-m", "sweep.run", *argv], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert (out / "trials" / "nll__seeds0.parquet").exists()
        sessions = [p for p in ray_tmp.rglob("session_*") if p.is_dir()]
        assert sessions, f"no Ray session folder under {ray_tmp}"
        assert (not with_wandb) or any((out / "wandb").rglob("*")), "W&B wrote nothing"
        console = proc.stdout + proc.stderr
        files = [p for root in (out, *sessions) for p in root.rglob("*")
                 if p.is_file() and not p.is_symlink()]
        assert len(files) > 10
        for name, value in planted.items():
            assert value not in console, f"{name} on the console"
            leaks = [str(p) for p in files if value.encode() in p.read_bytes()]
            assert not leaks, f"{name} written to {leaks}"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _features_without(tmp_path: Path, drop: dict[str, int]) -> tuple[Path, dict[str, set[int]]]:
    """The bundled features minus the first ``drop[split]`` songs of each split."""
    import numpy as np

    from mer_uq.data import load_deam, load_features, save_features

    dataset, table = load_deam(), load_features()
    dropped = {s: set(dataset.song_ids(s)[:n].tolist()) for s, n in drop.items()}
    keep = ~np.isin(table.song_ids, sorted(set().union(*dropped.values())))
    path = save_features(tmp_path / "partial.parquet", table.song_ids[keep],
                         {table.column: table.matrix[keep]})
    return path, dropped


def test_partial_features_are_refused_naming_the_flag(tmp_path, capsys) -> None:
    from sweep.run import main

    path, _ = _features_without(tmp_path, {"test": 2})
    assert main(["--methods", "nll", "--seeds", "1", "--features", str(path),
                 "--out", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "test split" in err[0] and "--allow-missing-features" in err[0]
    assert not (tmp_path / "sweep" / "sweep.json").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_allow_missing_features_drops_songs_everywhere(ray_session, tmp_path, capsys) -> None:
    import pandas as pd

    from mer_uq.data import load_deam
    from mer_uq.sources import load_trained_dataset
    from mer_uq.sweep_folder import read_trial_record
    from sweep.run import main

    path, dropped = _features_without(tmp_path, {"train": 3, "valid": 1, "test": 2})
    out = tmp_path / "sweep"
    assert main(["--methods", "nll", "--seeds", "1", "--features", str(path),
                 "--allow-missing-features", "--out", str(out), "--no-report", *FAST]) == 0
    assert "6 song(s) without features dropped (train 3, valid 1, test 2)" in \
        capsys.readouterr().out
    record = json.loads((out / "sweep.json").read_text())
    assert record["allow_missing_features"] is True
    full = load_deam()
    trial = out / "trials" / "nll__seeds0.parquet"
    assert read_trial_record(trial)["songs"] == {
        s: len(full.song_ids(s)) - len(dropped[s]) for s in ("train", "valid", "test")}
    predicted = pd.read_parquet(trial)
    gone = set().union(*dropped.values())
    assert not gone & set(predicted["song_id"])
    assert set(predicted.loc[predicted["split"] == "test", "song_id"]) == \
        set(full.song_ids("test")) - dropped["test"]
    reloaded = load_trained_dataset(record)  # what the analysis scores against
    assert not gone & set(reloaded.songs["song_id"]) and not gone & set(reloaded.ratings["song_id"])


@pytest.mark.ray
@pytest.mark.slow
def test_ctrl_c_says_interrupted_and_how_to_resume(tmp_path) -> None:
    import signal

    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    out = tmp_path / "sweep"
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep.run", "--methods", "nll", "--seeds", "1", "--out",
         str(out), "--epochs", "500", "--no-report"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the first progress line: a trial is running
            if "running" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 130, stderr[-2000:]
    assert f"interrupted; finished trials are kept in {out / 'trials'}" in stderr
    assert f"--resume {out}" in stderr
    assert "Traceback" not in stderr


@pytest.mark.ray
def test_gpu_request_without_a_gpu_fails_in_one_line(ray_session, tmp_path, capsys) -> None:
    from sweep.run import main

    if ray_session.cluster_resources().get("GPU", 0) >= 1:
        pytest.skip("the session Ray has a GPU")
    out = tmp_path / "sweep"
    assert main(["--methods", "nll", "--seeds", "1", "--gpus-per-trial", "1", "--out", str(out),
                 "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "can run a trial of 1 CPU + 1 GPU" in err[0], err
    assert not any((out / "trials").glob("*.parquet"))
