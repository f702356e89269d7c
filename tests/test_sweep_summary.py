"""The fallback Table 2 / Table 3 print and the progress line, on real run_trial output
(no Ray): the numbers must be the metrics recomputed by hand, the seeds ensemble one value."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import analysis.report
from mer_uq.data import load_deam, load_features
from mer_uq.metrics import pearson_r, r2_score
from mer_uq.sweep_folder import write_trial_parquet
from mer_uq.trial import FCNConfig, TrainConfig, TrialSpec, run_trial
from sweep.final_report import report_or_tables
from sweep.progress import ProgressPrinter
from sweep.summary import paper_tables


@pytest.fixture(scope="module")
def tiny_trials(tmp_path_factory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    dataset, features = load_deam(), load_features()
    train = TrainConfig(epochs=2, steps_per_epoch=3)
    folder = tmp_path_factory.mktemp("sweep") / "trials"
    frames = []
    for training in ("mean", "nll"):
        spec = TrialSpec(training, (0, 1), model=FCNConfig(), train=train, mc_passes=4)
        result = run_trial(spec, dataset, features)
        write_trial_parquet(folder / f"{training}__seeds0-1.parquet", result.predictions, {})
        frames.append(result.predictions)
    return folder, pd.concat(frames, ignore_index=True), dataset.songs


def test_tables_match_metrics_recomputed_by_hand(tiny_trials) -> None:
    _, predictions, songs = tiny_trials
    tables = paper_tables(predictions, songs)
    table2, table3 = tables["Table 2 (mean)"], tables["Table 3 (SD)"]
    assert list(table2.index) == ["seeds", "mc_dropout", "nll"]
    assert "seeds" in table3.index  # the ensemble has an SD; a single seed has none

    test = predictions[(predictions["split"] == "test") & (predictions["method"] == "nll")]
    target = songs.set_index("song_id")
    r2 = [r2_score(target.loc[g["song_id"], "valence_mean"].to_numpy(),
                   g["valence_mu"].to_numpy()) for _, g in test.groupby("seed")]
    assert table2.loc["nll", "valence R2"] == f"{np.mean(r2):.3f} ± {np.std(r2, ddof=1):.3f}"

    seeds = predictions[(predictions["split"] == "test") & (predictions["method"] == "seeds")]
    wide = seeds.pivot(index="song_id", columns="seed", values="arousal_mu")
    ensemble_sd = wide.std(axis=1, ddof=0).to_numpy()
    expected = pearson_r(target.loc[wide.index, "arousal_sd"].to_numpy(), ensemble_sd)
    assert table3.loc["seeds", "arousal Pearson"] == f"{expected:.3f}"


def test_sweep_prints_tables_when_the_analysis_fails(tiny_trials, monkeypatch, capsys) -> None:
    folder, _, songs = tiny_trials

    def broken(sweep_dir: Path) -> Path:
        raise RuntimeError("analysis exploded")

    monkeypatch.setattr(analysis.report, "write_report", broken)
    report_or_tables(folder.parent, songs)
    captured = capsys.readouterr()
    assert "analysis exploded" in captured.err
    assert "Table 2 (mean)" in captured.out and "Table 3 (SD)" in captured.out


def test_progress_line_counts_and_eta(capsys) -> None:
    printer = ProgressPrinter(total=4, max_epochs=10, interval_s=0.0)
    trials = [SimpleNamespace(trial_id=f"t{i}", error_file=None) for i in range(3)]
    printer.started -= 100.0  # as if 100 s had passed
    printer.on_trial_start(0, [], trials[0])
    printer.on_trial_start(0, [], trials[1])
    printer.on_trial_result(0, [], trials[0], {"epoch": 5})
    printer.on_trial_complete(0, [], trials[1])
    printer.on_trial_start(0, [], trials[2])
    printer.on_trial_error(0, [], trials[2])
    lines = capsys.readouterr().out.strip().splitlines()
    progress = [line for line in lines if "done," in line]
    assert "trials 1/4 done, 1 running, 1 failed" in progress[-1]
    assert "failed after its retries; full trace:" in lines[-1]
    # work done: 1 + 1 failed + 0.5 = 2.5 of 4 in ~100 s -> ~60 s left
    assert 55 <= printer.eta_seconds() <= 65
