"""The sweep's option declarations and what derives from them: every declared option is a
flag with its default, an identity option is recorded in sweep.json (and only one is) and
refused beside --resume/--from, the record round-trips, and ``--from DIR/sweep.json``
repeats a study to the byte."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mer_uq import sweep_record
from mer_uq.cli_args import non_negative_int, positive_int
from mer_uq.record_checks import boolean
from mer_uq.study_options import (
    STUDY_OPTIONS,
    Option,
    RecordKey,
    recorded_keys,
)
from mer_uq.sweep_folder import read_trial_file
from sweep.cli import OPTIONS, RUN_OPTIONS, SweepOptions, build_parser, parse_options
from sweep.folder_guards import RESUME_OPTIONS, ignored_record_flags, ignored_resume_flags
from sweep.run import main
from sweep.study import Study, study_from_options


def _given(option: Option) -> list[str]:
    """The option on a command line with a value other than its default."""
    if option.action is not None:
        return [option.flag_text]
    if option.choices is not None:
        return [option.flag_text, next(c for c in option.choices if c != option.default)]
    value = {int: "3", float: "0.25", positive_int: "3", non_negative_int: "3"}.get(
        option.type, "x.json")
    return [option.flag_text, value]


def test_every_declared_option_is_a_flag_with_its_default() -> None:
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(actions) == {o.name for o in OPTIONS}
    assert len({o.name for o in OPTIONS}) == len(OPTIONS)
    defaults = SweepOptions()
    for option in OPTIONS:
        assert option.flag_text in actions[option.name].option_strings
        assert getattr(defaults, option.name) == option.default
        assert getattr(parse_options([]), option.name) == option.default, option.name
    assert parse_options(["--seeds", "3", "7"]).seeds == (3, 7)
    assert parse_options(["--epochs", "4", "--dropout", "0.3"]).train_overrides == {"epochs": 4}
    assert parse_options(["--dropout", "0.3"]).model_overrides == {"dropout": 0.3}


def test_identity_options_are_refused_beside_a_record_run_options_are_not() -> None:
    for option in OPTIONS:
        argv = _given(option)
        refused_on_resume = ignored_resume_flags(parse_options(argv))
        refused_on_from = ignored_record_flags(parse_options(argv),
                                               allowed=("from_record", "out"))
        if option.identity:
            assert refused_on_resume == [option.flag_text]
            assert refused_on_from == [option.flag_text]
        elif option.beside_record:
            assert option.name in RESUME_OPTIONS
            assert refused_on_resume == [] and refused_on_from == []
    assert ignored_resume_flags(parse_options(["--out", "x"])) == ["--out"]
    assert ignored_record_flags(parse_options(["--resume", "x"]), allowed=("from_record",
                                                                          "out")) == ["--resume"]
    assert not any(o.identity for o in RUN_OPTIONS)
    # where and how it runs: what --resume (and sweep.slurm's requeued job) passes on
    applying = {"address", "storage_path", "cpus_per_trial", "gpus_per_trial", "max_concurrent",
                "max_failures", "report", "wandb", "wandb_project", "wandb_mode"}
    assert set(RESUME_OPTIONS) == applying
    assert ignored_resume_flags(parse_options(["--address", "auto", "--storage-path", "s3://b",
                                               "--no-report"])) == []
    assert all(o.identity for o in STUDY_OPTIONS)


def test_a_record_key_iff_identity_and_the_schema_is_the_declarations() -> None:
    declared = recorded_keys()
    assert all(o.identity for o in OPTIONS if o.record)
    with pytest.raises(ValueError, match="only identity options"):
        Option("x", None, "data", record=(RecordKey("x", boolean),))
    others = {*sweep_record.STUDY_KEYS, *sweep_record.PLAN_KEYS}
    assert not set(declared) & others
    assert set(sweep_record.KNOWN_KEYS) == set(declared) | others
    required = {k for k, key in declared.items() if key.required}
    required |= {k for k, (req, *_) in {**sweep_record.STUDY_KEYS,
                                         **sweep_record.PLAN_KEYS}.items() if req}
    assert set(sweep_record.REQUIRED_KEYS) == required
    # the study holds every setting the record holds (all keys but the computed ones)
    record = study_from_options(parse_options([])).to_record()
    assert set(record) == set(sweep_record.KNOWN_KEYS) - {"feature_sets"}
    sweep_record.validate_sweep_record(json.loads(json.dumps(record)), "x")


ROUND_TRIP = ["--methods", "nll,kld", "--seeds", "4", "9", "--seeds-per-trial", "1",
              "--epochs", "3", "--dropout", "0.3", "--raters", "2,all", "--train-fraction",
              "0.5,1", "--subsample-seed", "7", "--mc-passes", "5", "--keep-swap"]


def test_the_record_round_trips_to_the_same_study_and_plans() -> None:
    study = study_from_options(parse_options(ROUND_TRIP))
    record = json.loads(json.dumps(study.to_record()))
    again = Study.from_record(record)
    assert again == study
    assert [t.to_config() for t in again.trials()] == [t.to_config() for t in study.trials()]
    assert study.seeds == (4, 9) and study.methods == ("nll", "kld")
    assert study.raters == (2, None) and study.train_fractions == (0.5, 1.0)
    assert study.model["dropout"] == 0.3 and study.train["epochs"] == 3
    assert (study.mc_passes, study.fix_swap, study.subsample_seed) == (5, False, 7)
    assert {k: v for k, v in again.to_record().items() if k != "created"} == {
        k: v for k, v in record.items() if k != "created"}
    with pytest.raises(AttributeError):
        _ = study.no_such_setting


def test_from_refuses_study_flags_and_bad_records_in_one_line(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    record = study_from_options(parse_options(["--seeds", "2"])).to_record()
    (folder / "sweep.json").write_text(json.dumps(record))
    cases = [
        (["--from", str(folder / "sweep.json"), "--seeds", "3"], "would ignore --seeds"),
        (["--from", str(folder / "sweep.json"), "--resume", str(folder)],
         "would ignore --from"),
        (["--from", str(folder)], "is a folder; give its record"),
        (["--from", str(tmp_path / "none.json")], "no such file"),
        (["--from", str(folder / "sweep.json"), "--out", str(folder)], "already holds a sweep"),
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**record, "seeds": "15"}))
    cases.append((["--from", str(bad)], "key 'seeds' must be a list"))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({**record, "sedes": [1]}))
    cases.append((["--from", str(unknown)], "unknown key(s) ['sedes']"))
    elsewhere = tmp_path / "elsewhere.json"  # a record from another machine
    elsewhere.write_text(json.dumps({**record, "features": "/nowhere/f.parquet"}))
    cases.append((["--from", str(elsewhere)], "key 'features' names /nowhere/f.parquet"))
    for argv, says in cases:
        assert main([*argv, "--no-report"]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], (argv, err)


@pytest.mark.ray
@pytest.mark.slow
def test_from_repeats_a_study_to_the_byte(ray_session, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    argv = ["--methods", "nll,kld", "--seeds", "2", "--epochs", "3", "--steps-per-epoch",
            "3", "--mc-passes", "4", "--raters", "2,10"]
    assert main([*argv, "--out", str(first)]) == 0
    assert main(["--from", str(first / "sweep.json"), "--out", str(second)]) == 0
    old = json.loads((first / "sweep.json").read_text())
    new = json.loads((second / "sweep.json").read_text())
    assert {k: v for k, v in old.items() if k != "created"} == {
        k: v for k, v in new.items() if k != "created"}
    stems = sorted(p.name for p in (first / "trials").glob("*.parquet"))
    assert stems == sorted(p.name for p in (second / "trials").glob("*.parquet"))
    assert len(stems) == 4  # nll and kld, k = 2 and 10
    for name in stems:
        a, _ = read_trial_file(first / "trials" / name)
        b, _ = read_trial_file(second / "trials" / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    tables = first / "report" / "tables"
    for table in sorted(tables.glob("*.csv")):
        if table.name != "trials.csv":  # each trial's wall time
            assert table.read_bytes() == (second / "report" / "tables" / table.name
                                          ).read_bytes(), table.name


class _Watched(dict):
    """A record that notes every key read from it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def test_the_dataset_is_read_back_through_declared_settings_and_defaults() -> None:
    from mer_uq.sources import load_feature_table, load_trained_dataset

    record = _Watched()  # no sweep.json: every key at its declared default (bundled DEAM)
    dataset = load_trained_dataset(record)
    load_feature_table(record)
    assert record.read <= set(sweep_record.SETTING_DEFAULTS), record.read
    assert sweep_record.record_settings({})["fix_swap"] is True
    default_study = study_from_options(parse_options([]))
    again = load_trained_dataset(dict(default_study.settings))
    assert again.song_ids("test").tolist() == dataset.song_ids("test").tolist()


def test_include_2015_is_recorded_and_read_back_by_the_analysis_side() -> None:
    from mer_uq.sources import load_dataset

    study = study_from_options(parse_options(["--include-2015"]))
    record = json.loads(json.dumps(study.to_record()))
    assert record["include_2015"] is True
    assert study_from_options(parse_options([])).to_record()["include_2015"] is False
    years = set(load_dataset(record).songs["year"])
    assert 2015 in years and 2015 not in set(load_dataset({}).songs["year"])
