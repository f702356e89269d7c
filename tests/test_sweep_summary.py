"""The end of a sweep (the report's tables on the console, or one line when the report
fails) and the progress line."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import analysis.report
from mer_uq.data import load_deam, load_features
from mer_uq.sweep_folder import TRIALS_DIR, write_trial_parquet
from mer_uq.trial import FCNConfig, TrainConfig, TrialSpec, run_trial
from sweep.experiment import ProgressPrinter
from sweep.seed_sweep import write_final_report


def _tiny_sweep(folder: Path) -> Path:
    spec = TrialSpec("nll", (0, 1), model=FCNConfig(), train=TrainConfig(epochs=2,
                                                                          steps_per_epoch=3))
    result = run_trial(spec, load_deam(), load_features())
    write_trial_parquet(folder / TRIALS_DIR / "nll__seeds0-1.parquet", result.predictions, {})
    return folder


def test_sweep_prints_the_report_tables(tmp_path, capsys) -> None:
    sweep_dir = _tiny_sweep(tmp_path / "sweep")
    assert write_final_report(sweep_dir)
    out = capsys.readouterr().out
    table2 = (sweep_dir / "report" / "tables" / "table2.md").read_text()
    assert f"Table 2: predicted vs empirical MEAN rating (test split)\n{table2}" in out
    assert "Table 3: predicted vs empirical inter-rater SD (test split)" in out
    assert f"[sweep] report: {sweep_dir / 'report' / 'report.md'}" in out


def test_a_failed_report_is_one_line_and_keeps_the_trials(tmp_path, monkeypatch, capsys
                                                           ) -> None:
    def broken(sweep_dir: Path) -> Path:
        raise RuntimeError("analysis exploded")

    monkeypatch.setattr(analysis.report, "write_report", broken)
    sweep_dir = tmp_path / "sweep"
    assert not write_final_report(sweep_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"[sweep] report failed (RuntimeError: analysis exploded); the trial files "
                   f"are kept: rebuild it with python -m analysis.report {sweep_dir}"]


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
