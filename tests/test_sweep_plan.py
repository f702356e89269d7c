"""The sweep's plan and its refusals of bad input: no training, no Ray start needed.

Each bad input must end in ONE clear line (exit code 2), before any Ray start or file is
written; these tests pin the message to what the user got wrong.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from mer_uq import methods
from mer_uq.data import load_deam, load_features, save_features
from mer_uq.methods import PAPER_METHODS
from sweep.cli import parse_options
from sweep.ray_runtime import ResourceError, TrialResources
from sweep.run import main
from sweep.study import (
    TYPICAL_EPOCHS,
    PlanError,
    TrialPlan,
    longest_first,
    plan_trials,
    resolve_methods,
    resolve_seeds,
    seeds_label,
    study_from_options,
)


def test_all_is_the_paper_five_and_all_plus_adds_the_extras() -> None:
    assert resolve_methods("all") == ("seeds", "mc_dropout", "nll", "mse", "kld")
    extended = resolve_methods("all+")
    assert extended[:5] == PAPER_METHODS
    assert {"nll_exact", "kld_exact", "beta_nll", "rater_nll"} <= set(extended)


def test_default_study_is_four_trials_with_seeds_and_mc_dropout_trained_once() -> None:
    plans = plan_trials(resolve_methods("all"), resolve_seeds([15]), None)
    assert sorted(p.training for p in plans) == ["kld", "mean", "mse", "nll"]
    mean = next(p for p in plans if p.training == "mean")
    assert set(mean.methods) == {"seeds", "mc_dropout"}
    assert all(p.seeds == tuple(range(15)) for p in plans)


def test_seeds_per_trial_chunks_every_training_key() -> None:
    plans = plan_trials(("nll", "seeds"), resolve_seeds([5]), 2)
    assert [(p.training, p.seeds) for p in plans if p.training == "nll"] == [
        ("nll", (0, 1)), ("nll", (2, 3)), ("nll", (4,))]
    assert len({p.file_stem for p in plans}) == len(plans) == 6


def test_trials_launch_longest_first_and_order_is_only_a_permutation() -> None:
    plans = plan_trials(resolve_methods("all"), resolve_seeds([15]), None)
    ordered = longest_first(plans)
    assert [p.training for p in ordered] == ["kld", "nll", "mean", "mse"]
    assert sorted(ordered, key=plans.index) == plans
    # more seeds is more work: a 15-seed chunk of a short key before a 2-seed one of a
    # long key; equal work keeps the plan order, and an unknown key still gets a place
    mixed = [*plan_trials(("kld",), (0, 1), None), *plan_trials(("mse",), range(15), None)]
    assert [p.training for p in longest_first(mixed)] == ["mse", "kld"]
    chunks = plan_trials(("nll",), range(6), 2)
    unknown = TrialPlan(training="not_a_key", seeds=(0,), methods=())
    assert longest_first([unknown, *chunks]) == [*chunks, unknown]
    assert set(TYPICAL_EPOCHS) == set(methods.TRAININGS)


def test_seed_list_and_labels() -> None:
    assert resolve_seeds([3]) == (0, 1, 2)
    assert resolve_seeds([3, 7, 11]) == (3, 7, 11)
    assert seeds_label((0, 1, 2, 7, 9, 10)) == "seeds0-2_7_9-10"


@pytest.mark.parametrize(("argv", "message"), [
    (["--methods", "nll,bogus"], "unknown method(s) bogus"),
    (["--seeds", "0"], "--seeds must be a positive count"),
    (["--seeds", "-3"], "--seeds must be a positive count"),
    (["--seeds", "1", "1"], "seeds must be distinct"),
    (["--gpus-per-trial", "0.3"], "is not 1/k"),
])
def test_bad_requests_fail_with_one_clear_line(argv, message, tmp_path, capsys) -> None:
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "sweep.json").exists()


def test_resume_of_a_folder_that_is_not_a_sweep(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("not a sweep")
    assert main(["--resume", str(tmp_path)]) == 2
    assert "is not a sweep folder" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_address_nobody_listens_on(tmp_path, capsys) -> None:
    with socket.socket() as s:  # a port that was free a moment ago and is closed now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["--address", f"127.0.0.1:{port}", "--out", str(tmp_path / "o")]) == 2
    assert f"no Ray cluster listens at 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["--address", "nonsense", "--out", str(tmp_path / "o")]) == 2
    assert "is not 'auto' or HOST:PORT" in capsys.readouterr().err


def test_features_without_the_splits_songs(tmp_path, capsys) -> None:
    features = load_features()
    test_ids = load_deam().song_ids("test")
    keep = ~np.isin(features.song_ids, test_ids[:3])
    partial = save_features(tmp_path / "partial.parquet", features.song_ids[keep],
                            {"features": features.matrix[keep]})
    assert main(["--features", str(partial), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "do not cover the" in err and str(int(test_ids[0])) in err


def test_config_file_sets_the_model_and_explicit_flags_win(tmp_path: Path) -> None:
    best = tmp_path / "best_config.json"
    best.write_text('{"model": {"dropout": 0.23, "hidden_width": 300}}')
    study = study_from_options(parse_options(["--config", str(best)]))
    assert (study.model["dropout"], study.model["hidden_width"]) == (0.23, 300)
    study = study_from_options(parse_options(["--config", str(best), "--dropout", "0.4"]))
    assert (study.model["dropout"], study.model["hidden_width"]) == (0.4, 300)


def test_help_lists_the_flags(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--methods", "--seeds-per-trial", "--address", "--gpus-per-trial", "--resume",
                 "--wandb-mode", "--search", "--storage-path", "--config", "--no-report"):
        assert flag in out


def test_fractional_gpus_of_the_form_one_over_k_are_accepted() -> None:
    for gpus in (0.0, 0.5, 0.25, 0.2, 0.1, 1.0, 2.0):
        TrialResources(cpus=1, gpus=gpus).validate()
    with pytest.raises(ResourceError):
        TrialResources(cpus=0, gpus=0).validate()


def test_unknown_method_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="known:"):
        resolve_methods("seeds,,nope")
