"""sweep.json's schema: every key, its type and its range, checked in one place.

sweep.json is the resume record and the analysis's recipe (mer_uq.sweep_folder), and a
person can edit it. Read without checks, ``"seeds": "15"`` resumed as seeds 1 and 5,
``"include_2015": "false"`` read as True and ``"model": []`` retrained with the default
settings. So every reader (``--resume``, the report, the comparison of folders) goes
through ``validate_sweep_record``: a record that is not exactly what the writer writes is
ONE error naming the key, and nothing is guessed.

A key a study option decides is declared with that option (mer_uq.study_options); the
few keys no single option decides are listed below. An unknown key is refused, so a typo
cannot pass for a setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mer_uq.record_checks import (
    MAX_INT,
    Bad,
    Check,
    feature_set,
    list_of,
    one_of,
    optional,
    settings_of,
    text,
    training_names,
)
from mer_uq.study_options import recorded_keys

__all__ = ["MAX_INT", "SweepRecordError", "validate_sweep_record"]


class SweepRecordError(ValueError):
    """A sweep.json value outside its schema; the message names the file and the key."""


# Keys no single option decides, key -> (required?, check, value when an older record lacks
# it). The study's settings: the model and training settings (the training knobs over
# mer_uq.config's defaults, or --config) and the feature axis (from --features and
# --feature-column together); then what the sweep computes from them when it writes the
# record: the training keys, the planned trial file stems, the time.
STUDY_KEYS: dict[str, tuple[bool, Check, Any]] = {
    "model": (True, settings_of("FCNConfig"), None),
    "train": (True, settings_of("TrainConfig"), None),
    "feature_sets": (False, optional(list_of(feature_set, distinct=True)), None),
}
PLAN_KEYS: dict[str, tuple[bool, Check]] = {
    "trainings": (True, list_of(one_of(training_names, "training key"), distinct=True)),
    "trials": (False, list_of(text, non_empty=False, distinct=True)),
    "created": (True, text),
}

# key -> (required?, check): the keys the study options declare (mer_uq.study_options),
# then the ones above. Required keys are the contract with the analysis.
_TOP_LEVEL: dict[str, tuple[bool, Check]] = {
    **{name: (key.required, key.check) for name, key in recorded_keys().items()},
    **{name: (required, check) for name, (required, check, _) in STUDY_KEYS.items()},
    **PLAN_KEYS,
}
# The study's settings (every key but the computed ones) and their values when an older
# record lacks them: what sweep.study.Study holds.
SETTING_DEFAULTS: dict[str, Any] = {
    **{name: key.default for name, key in recorded_keys().items()},
    **{name: default for name, (_, _, default) in STUDY_KEYS.items()},
}


def record_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """The study's settings a record holds, each key it lacks at its declared default (the
    bundled DEAM data and mer_uq's defaults): what the readers of the data keys
    (mer_uq.sources) see, so no reader keeps a default of its own."""
    return {name: record.get(name, default) for name, default in SETTING_DEFAULTS.items()}


REQUIRED_KEYS: tuple[str, ...] = tuple(k for k, (required, _) in _TOP_LEVEL.items() if required)
KNOWN_KEYS: tuple[str, ...] = tuple(_TOP_LEVEL)


def validate_sweep_record(record: Any, where: Path | str) -> dict[str, Any]:
    """``record`` itself when it is a valid sweep.json; else SweepRecordError naming
    ``where`` (the file) and the first bad key."""
    if not isinstance(record, dict):
        raise SweepRecordError(f"{where}: not a sweep record (a JSON object is expected, got "
                               f"{type(record).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise SweepRecordError(f"{where}: not a sweep record, missing key(s) {missing}")
    unknown = sorted(set(record) - set(_TOP_LEVEL))
    if unknown:
        raise SweepRecordError(f"{where}: unknown key(s) {unknown} (a typo, or a record of a "
                               "newer version)")
    for key, value in record.items():
        try:
            _TOP_LEVEL[key][1](key, value)
        except Bad as bad:
            raise SweepRecordError(f"{where}: key {key!r} {bad}") from None
    if "train_fractions" in record and record["train_fractions"] is not None:
        bad = [f for f in record["train_fractions"] if not f > 0]
        if bad:
            raise SweepRecordError(f"{where}: key 'train_fractions' must hold shares in "
                                   f"(0, 1], got {bad}")
    return record
