"""A method from another installed package, found through the `mer_uq.methods` entry
point and run through a real `python -m sweep.run` (its own Ray, whose workers see the
plugin because they inherit the driver's PYTHONPATH), beside a built-in family method."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mer_uq import methods
from mer_uq.sweep_folder import read_trial_record

REPO = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).resolve().parent / "plugins" / "mer_uq_example_plugin"


def install_plugin(site: Path) -> None:
    """Install the example plugin into `site` as pip would lay it out (its package and a
    dist-info with the entry point), without a build: importlib.metadata finds it on
    sys.path."""
    shutil.copytree(PLUGIN / "mer_uq_example_plugin", site / "mer_uq_example_plugin")
    info = site / "mer_uq_example_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mer-uq-example-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[mer_uq.methods]\ncrps_gaussian = mer_uq_example_plugin:METHODS\n")


def _env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
            "RAY_USAGE_STATS_ENABLED": "0"}


def test_broken_plugins_are_named() -> None:
    with pytest.raises(methods.PluginError, match=r"'bad'.*'nll' exists"):
        methods._register_plugin("bad", [methods.TRAININGS["nll"]])
    with pytest.raises(methods.PluginError, match=r"'bad'.*list of TrainingSpec"):
        methods._register_plugin("bad", 3)
    assert "crps_gaussian" not in methods.METHODS  # not installed in this process


def test_plugin_registers_without_torch(tmp_path) -> None:
    install_plugin(tmp_path)
    code = ("import sys; from mer_uq import methods; "
            "print(methods.PLUGIN_METHODS, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "('crps_gaussian',) False"


@pytest.mark.slow
@pytest.mark.ray
def test_plugin_method_runs_through_a_real_sweep(tmp_path) -> None:
    install_plugin(tmp_path / "site")
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "sweep.run", "--methods", "crps_gaussian,student_t",
               "--seeds", "2", "--epochs", "2", "--steps-per-epoch", "3", "--out", str(out)]
    done = subprocess.run(command, env=_env(tmp_path / "site"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    trial = pd.read_parquet(next((out / "trials").glob("crps_gaussian__*.parquet")))
    assert set(trial["method"]) == {"crps_gaussian"} and set(trial["seed"]) == {0, 1}
    assert (trial["valence_sigma"] > 0).all()
    cells = pd.read_csv(out / "report" / "tables" / "cells.csv")
    assert "crps_gaussian" in set(cells["row_key"])
    assert "ensemble_crps_gaussian" in set(cells["row_key"])
    scores = pd.read_csv(out / "report" / "tables" / "rating_scores.csv")
    assert {"crps_gaussian", "student_t"} <= set(scores["row_key"])
    # a family beyond the Gaussian describes its columns in the trial record
    family_file = next((out / "trials").glob("student_t__*.parquet"))
    described = read_trial_record(family_file)["distributions"]["student_t"]
    assert described["family"] == "student_t"
    assert set(described["columns"]["arousal"].values()) <= set(pd.read_parquet(family_file))
    assert "distributions" not in read_trial_record(next((out / "trials").glob("crps_*")))
