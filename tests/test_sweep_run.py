"""The sweep end to end, in-process on the shared session Ray, with the real learning core
and short training: results, tables, resume, a worker killed mid-trial, Optuna, W&B."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mer_uq.data import load_deam
from mer_uq.schema import DIMENSIONS, PRED_MU, PRED_SIGMA
from mer_uq.sweep_folder import REQUIRED_KEYS, read_trial_record
from sweep.experiment import CRASH_ONCE_ENV
from sweep.run import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# Short training: enough to exercise every code path, far from the paper's settings.
FAST = ["--epochs", "2", "--steps-per-epoch", "3", "--mc-passes", "4"]


def trial_files(sweep_dir: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted((sweep_dir / "trials").glob("*.parquet"))}


def test_paper_methods_end_to_end(ray_session, tmp_path, capsys) -> None:
    out = tmp_path / "sweep"
    assert main(["--methods", "all", "--seeds", "2", "--out", str(out), *FAST]) == 0
    stdout = capsys.readouterr().out

    files = trial_files(out)
    assert set(files) == {f"{t}__seeds0-1" for t in ("mean", "nll", "mse", "kld")}
    record = json.loads((out / "sweep.json").read_text())
    assert set(REQUIRED_KEYS) <= set(record)
    assert record["seeds"] == [0, 1] and record["trainings"] == ["kld", "mean", "mse", "nll"]

    predictions = pd.concat([pd.read_parquet(p) for p in files.values()])
    test_ids = set(load_deam().song_ids("test").tolist())
    for method in ("seeds", "mc_dropout", "nll", "mse", "kld"):
        for seed in (0, 1):
            rows = predictions[(predictions["method"] == method) & (predictions["seed"] == seed)
                               & (predictions["split"] == "test")]
            assert set(rows["song_id"]) == test_ids, (method, seed)
            assert rows[[PRED_MU[d] for d in DIMENSIONS]].notna().all().all()
    assert predictions.loc[predictions["method"] == "nll",
                           [PRED_SIGMA[d] for d in DIMENSIONS]].gt(0).all().all()

    meta = read_trial_record(files["nll__seeds0-1"])
    assert meta["seeds"] == [0, 1] and meta["train"]["epochs"] == 2
    assert "val_loss" in meta["metrics"] and meta["node"]["node_id"]
    assert "trials 4/4 done" in stdout
    assert ("Table 2" in stdout and "Table 3" in stdout) or "report:" in stdout

    # Resuming a finished sweep reruns nothing and rewrites nothing.
    mtimes = {k: p.stat().st_mtime_ns for k, p in files.items()}
    assert main(["--resume", str(out), "--no-report"]) == 0
    assert "(4 already finished)" in capsys.readouterr().out
    assert {k: p.stat().st_mtime_ns for k, p in trial_files(out).items()} == mtimes


def test_out_folder_with_results_is_not_overwritten(ray_session, tmp_path, capsys) -> None:
    out = tmp_path / "sweep"
    (out / "trials").mkdir(parents=True)
    (out / "trials" / "nll__seeds0.parquet").write_bytes(b"earlier result")
    assert main(["--methods", "nll", "--seeds", "1", "--out", str(out), *FAST]) == 2
    assert "use --resume" in capsys.readouterr().err
    assert (out / "trials" / "nll__seeds0.parquet").read_bytes() == b"earlier result"


def test_worker_killed_mid_trial_is_retried(ray_session, tmp_path, monkeypatch, capsys) -> None:
    marker = tmp_path / "crashed-once"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))
    out = tmp_path / "sweep"
    argv = ["--methods", "nll", "--seeds", "2", "--seeds-per-trial", "1", "--out", str(out),
            "--no-report", *FAST]
    assert main(argv) == 0
    assert marker.exists(), "the fault was never injected"
    stdout = capsys.readouterr().out
    assert "retrying; full trace: " in stdout
    trace = Path(stdout.split("retrying; full trace: ")[1].split()[0])
    assert trace.is_file() and "Failure # 1" in trace.read_text()
    files = trial_files(out)
    assert set(files) == {"nll__seeds0", "nll__seeds1"}
    for path in files.values():  # exactly one copy of each seed's predictions
        frame = pd.read_parquet(path)
        assert not frame.duplicated(["song_id", "split", "method", "seed"]).any()


def test_optuna_search_writes_a_usable_best_config(ray_session, tmp_path) -> None:
    out = tmp_path / "search"
    argv = ["--search", "optuna", "--search-method", "nll", "--num-samples", "3", "--seeds", "1",
            "--out", str(out), *FAST]
    assert main(argv) == 0
    best = json.loads((out / "search" / "best_config.json").read_text())
    assert 0.1 <= best["model"]["dropout"] <= 0.7
    assert 64 <= best["model"]["hidden_width"] <= 512
    assert best["training"] == "nll" and "validation" in best["objective"]
    assert len(list((out / "search" / "trials").glob("nll__search-*.parquet"))) == 3
    assert not (out / "trials").exists(), "search trials must not look like a seed sweep"

    searched = read_trial_record(next((out / "search" / "trials").glob("*.parquet")))
    assert searched["metrics"]["val_loss"] >= best["val_loss"]


def test_wandb_offline_writes_runs_locally_and_never_the_key(
    ray_session, tmp_path, monkeypatch
) -> None:
    sentinel = "sentinel-key-" + "0" * 28
    monkeypatch.setenv("WANDB_API_KEY", sentinel)
    monkeypatch.setenv("WANDB_MODE", "offline")  # the sweep sets it; restored after the test
    out = tmp_path / "sweep"
    argv = ["--methods", "nll", "--seeds", "1", "--wandb", "--out", str(out), "--no-report", *FAST]
    assert main(argv) == 0
    runs = list((out / "wandb").glob("offline-run-*"))
    assert runs, "no offline W&B run folder"
    assert list(runs[0].glob("*.wandb")), "offline run has no .wandb data file"
    for path in out.rglob("*"):
        if path.is_file():
            assert sentinel.encode() not in path.read_bytes(), path
