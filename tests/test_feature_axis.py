"""The feature axis: several feature tables / columns as a grid dimension of the sweep.

Plan level (no Ray): a single feature set keeps the plans, trial ids and sweep.json of
before; several sets multiply the plans, name them in the ids and the record, and survive
--resume's round trip. End to end (Ray, short training): one sweep over three feature
sets, each trial trained on its own table, the report's main tables on the first set only,
and the feature-set section's numbers recomputed from the trial files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mer_uq.data.features import load_features, save_features
from mer_uq.schema import PRED_MU, PRED_SIGMA, TARGET_MEAN, TARGET_SD
from sweep.cli import parse_options
from sweep.study import PlanError, Study, study_from_options

FAST = ["--epochs", "2", "--steps-per-epoch", "3", "--mc-passes", "4"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled openSMILE table, a subset of its dimensions, and a two-column table
    (one column = the openSMILE vector reversed, another = random noise)."""
    root = tmp_path_factory.mktemp("feature_tables")
    base = load_features()
    noise = np.random.default_rng(0).standard_normal((base.song_ids.size, 8))
    paths = {
        "first32": save_features(root / "first32.parquet", base.song_ids,
                                 {"first32": base.matrix[:, :32]}),
        "two": save_features(root / "two.parquet", base.song_ids,
                             {"reversed": base.matrix[:, ::-1].copy(), "noise": noise},
                             default_column="reversed"),
    }
    return paths


def _study(argv: list[str]) -> Study:
    return study_from_options(parse_options(argv))


def test_one_feature_set_keeps_plans_ids_and_record(tables: dict[str, Path]) -> None:
    for argv in ([], ["--features", str(tables["two"]), "--feature-column", "noise"]):
        study = _study(["--methods", "all", "--seeds", "3", *argv])
        assert study.feature_sets is None
        assert [t.file_stem for t in study.trials()] == [
            f"{t}__seeds0-2" for t in ("mean", "nll", "mse", "kld")]
        assert all("feature_set" not in t.to_config() for t in study.trials())
        record = study.to_record()
        assert "feature_sets" not in record
        assert record["feature_column"] == (argv[-1] if argv else None)


def test_several_feature_sets_are_a_grid_axis(tables: dict[str, Path]) -> None:
    study = _study(["--methods", "nll", "--seeds", "2", "--features",
                    f"{tables['first32']},{tables['two']}"])
    labels = [f["label"] for f in study.feature_sets]
    assert labels == ["first32", "two"]
    assert study.features == str(tables["first32"].resolve())  # the reference set
    assert [t.file_stem for t in study.trials()] == ["nll__seeds0-1_feat-first32",
                                                      "nll__seeds0-1_feat-two"]
    record = study.to_record()
    assert [f["label"] for f in record["feature_sets"]] == labels
    assert record["trials"] == [t.file_stem for t in study.trials()]
    again = Study.from_record(json.loads(json.dumps(record)))
    assert [t.to_config() for t in again.trials()] == [t.to_config() for t in study.trials()]

    columns = _study(["--methods", "nll", "--seeds", "1", "--features", str(tables["two"]),
                      "--feature-column", "reversed,noise", "--raters", "3,all"])
    stems = [t.file_stem for t in columns.trials()]
    assert stems == [f"nll__seeds0_k{k}_frac1_sub0_feat-two-{c}"
                     for c in ("reversed", "noise") for k in ("3", "all")]


@pytest.mark.parametrize("extra, message", [
    (["--allow-missing-features"], "same test songs"),
    (["--search", "optuna"], "one feature set"),
    (["--feature-column", "a,a"], "distinct"),
])
def test_feature_axis_refusals(tables: dict[str, Path], extra: list[str], message: str
                               ) -> None:
    with pytest.raises(PlanError, match=message):
        _study(["--features", f"{tables['first32']},{tables['two']}", *extra])


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_over_three_feature_sets(ray_session, tables: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.compute.pipeline import AnalysisSettings, compute_report_data
    from analysis.write.report_files import write_report_files
    from mer_uq.data import load_deam
    from sweep.run import main

    out = tmp_path / "sweep"
    argv = ["--methods", "nll", "--seeds", "2", "--features",
            f"{tables['first32']},{tables['two']}", "--feature-column", "a,", "--out",
            str(tmp_path / "refused"), "--no-report", *FAST]
    assert main(argv) == 2  # an empty column item is refused in one line
    assert "non-empty" in capsys.readouterr().err
    argv = ["--methods", "nll", "--seeds", "2", "--features", str(tables["two"]),
            "--feature-column", "reversed,noise", "--out", str(out), "--no-report", *FAST]
    assert main(argv) == 0
    files = sorted(p.stem for p in (out / "trials").glob("*.parquet"))
    assert files == ["nll__seeds0-1_feat-two-noise", "nll__seeds0-1_feat-two-reversed"]
    assert main(["--resume", str(out), "--no-report"]) == 0
    assert "(2 already finished)" in capsys.readouterr().out

    data = compute_report_data(out, AnalysisSettings(n_boot=40, reliability_repeats=10,
                                                     reliability_boot=20,
                                                     summary_reliability_repeats=10,
                                                     summary_reliability_boot=20))
    # The main tables show the first set only: recompute the nll r of the mean from it.
    trials = pd.read_parquet(out / "trials" / "nll__seeds0-1_feat-two-reversed.parquet")
    test = trials[trials["split"] == "test"]
    songs = load_deam().songs.set_index("song_id").loc[data.song_ids]
    cell = data.cells[(data.cells["table"] == "table2") & (data.cells["row_key"] == "nll")
                      & (data.cells["dimension"] == "valence")
                      & (data.cells["metric"] == "pearson")].iloc[0]
    per_seed = [stats.pearsonr(songs[TARGET_MEAN["valence"]],
                               test[test["seed"] == s].set_index("song_id")
                               .loc[data.song_ids, PRED_MU["valence"]])[0] for s in (0, 1)]
    assert cell["value"] == pytest.approx(np.mean(per_seed), abs=1e-10)

    report = write_report_files(data).markdown
    text = report.read_text()
    assert "Feature sets: which representation carries the spread?" in text
    assert "[feature set two-reversed;" in text
    axis = pd.read_csv(report.parent / "tables" / "feature_axis.csv")
    assert set(axis["feature_set"]) == {"two-reversed", "two-noise"}
    noise = pd.read_parquet(out / "trials" / "nll__seeds0-1_feat-two-noise.parquet")
    noise = noise[noise["split"] == "test"]
    line = axis[(axis["feature_set"] == "two-noise") & (axis["row"] == "nll")
                & (axis["target"] == "sd") & (axis["dimension"] == "valence")].iloc[0]
    expected = np.mean([stats.pearsonr(songs[TARGET_SD["valence"]],
                                       noise[noise["seed"] == s].set_index("song_id")
                                       .loc[data.song_ids, PRED_SIGMA["valence"]])[0]
                        for s in (0, 1)])
    assert line["value"] == pytest.approx(expected, abs=1e-10)
    assert line["ci_low"] <= line["value"] <= line["ci_high"]
    assert np.isfinite(line["ceiling"])
    comp = pd.read_csv(report.parent / "tables" / "feature_axis_comparisons.csv")
    # (nll, its deep ensemble) x (mean, sd) x 2 dimensions, one pair of sets
    assert len(comp) == 8 and set(comp["row"]) == {"nll", "ensemble_nll"}
    assert (report.parent / "figures" / "feature_axis.png").stat().st_size > 0


def _folder(root: Path, table: Path, fix_swap: bool = True) -> Path:
    """A sweep folder of one feature set, trained without Ray (mer_uq.trial.run_trial)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mer_uq.data.dataset import load_deam
    from mer_uq.model import FCNConfig
    from mer_uq.training import TrainConfig
    from mer_uq.trial import TrialSpec, run_trial

    (root / "trials").mkdir(parents=True)
    spec = TrialSpec(training="nll", seeds=(0, 1), model=FCNConfig(hidden_width=8),
                     train=TrainConfig(epochs=2, steps_per_epoch=3, batch_size=16,
                                       device="cpu"), mc_passes=4)
    result = run_trial(spec, load_deam(), load_features(table))
    frame = pa.Table.from_pandas(result.predictions, preserve_index=False)
    pq.write_table(frame.replace_schema_metadata(
        {"mer_uq.trial": json.dumps({"training": "nll", "metrics": result.metrics})}),
        root / "trials" / "nll__seeds0-1.parquet")
    (root / "sweep.json").write_text(json.dumps({
        "deam_dir": None, "split_file": None, "fix_swap": fix_swap, "include_2015": False,
        "features": str(table), "feature_column": None, "methods": ["nll"],
        "trainings": ["nll"], "seeds": [0, 1], "created": "test",
        "model": {"hidden_width": 8},
        "train": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 16}, "mc_passes": 4}))
    return root


def test_separate_sweeps_compared_on_the_same_songs(tables: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    from analysis.feature_axis import FeatureAxisError, main, run

    a = _folder(tmp_path / "a", tables["first32"])
    b = _folder(tmp_path / "b", tables["two"])
    run([a, b], tmp_path / "out", n_boot=30, reliability_repeats=5, reliability_boot=10)
    axis = pd.read_csv(tmp_path / "out" / "feature_axis.csv")
    assert set(axis["feature_set"]) == {"first32", "two"}
    comp = pd.read_csv(tmp_path / "out" / "feature_axis_comparisons.csv")
    line = comp[(comp["row"] == "nll") & (comp["target"] == "sd")
                & (comp["dimension"] == "arousal")].iloc[0]
    r = axis.set_index(["feature_set", "row", "target", "dimension"])["value"]
    assert line["difference"] == pytest.approx(r[("first32", "nll", "sd", "arousal")]
                                               - r[("two", "nll", "sd", "arousal")])
    assert line["ci_low"] <= line["difference"] <= line["ci_high"]
    assert (tmp_path / "out" / "feature_axis.png").is_file()
    assert "Feature sets" in (tmp_path / "out" / "feature_axis.md").read_text()
    raw = _folder(tmp_path / "raw", tables["two"], fix_swap=False)
    with pytest.raises(FeatureAxisError, match="label version"):
        run([a, raw], tmp_path / "out2", n_boot=0, reliability_repeats=5,
            reliability_boot=10)
    assert main([str(a), "--out", str(tmp_path / "o")]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main([str(a), str(tmp_path / "a"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "given twice" in err and str(a) in err
    assert not (tmp_path / "o").exists()
