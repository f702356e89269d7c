"""sweep.json's schema: every key, its type and its range, checked in one place.

sweep.json is the resume record and the analysis's recipe (mer_uq.sweep_folder), and a
person can edit it. Read without checks, ``"seeds": "15"`` resumed as seeds 1 and 5,
``"include_2015": "false"`` read as True and ``"model": []`` retrained with the default
settings. So every reader (``--resume``, the report, the comparison of folders) goes
through ``validate_sweep_record``: a record that is not exactly what the writer writes is
ONE error naming the key, and nothing is guessed.

A new key of sweep.json needs one line in ``_TOP_LEVEL`` below; an unknown key is refused,
so a typo cannot pass for a setting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Largest seed, count or integer setting accepted: numpy's and torch's seeds are 32-bit,
# and no setting of a sweep is larger (10**30 epochs is a typo, not a plan).
MAX_INT = 2**31 - 1


class SweepRecordError(ValueError):
    """A sweep.json value outside its schema; the message names the file and the key."""


Check = Callable[[str, Any], Any]  # (key path, value) -> the value, or raises _Bad


class _Bad(Exception):
    """Internal: why a value fails; turned into a SweepRecordError naming file and key."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(low: int = 0, high: int = MAX_INT) -> Check:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"must be an integer, got {_describe(value)}")
        if not low <= value <= high:
            raise _Bad(f"must be in [{low}, {high}], got {_describe(value)}")
        return value
    return check


def _float(low: float = -math.inf, high: float = math.inf) -> Check:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(f"must be a number, got {_describe(value)}")
        if not math.isfinite(value) or not low <= value <= high:
            raise _Bad(f"must be a finite number in [{low}, {high}], got {_describe(value)}")
        return value
    return check


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false, got {_describe(value)}")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(f"must be a non-empty string, got {_describe(value)}")
    return value


def _optional(check: Check) -> Check:
    def optional(key: str, value: Any) -> Any:
        return None if value is None else check(key, value)
    return optional


def _list(item: Check, *, non_empty: bool = True, distinct: bool = False) -> Check:
    def check(key: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _Bad(f"must be a list, got {_describe(value)}")
        if non_empty and not value:
            raise _Bad("must not be empty")
        items = []
        for i, v in enumerate(value):
            try:
                items.append(item(f"{key}[{i}]", v))
            except _Bad as bad:
                raise _Bad(f"item {i}: {bad}") from None
        if distinct and len({repr(v) for v in items}) != len(items):
            raise _Bad(f"must hold distinct values, got {_describe(value)}")
        return items
    return check


def _one_of(names: Callable[[], dict[str, Any]], what: str) -> Check:
    def check(key: str, value: Any) -> str:
        known = names()
        if not isinstance(value, str) or value not in known:
            raise _Bad(f"unknown {what} {_describe(value)}; known: {', '.join(known)}")
        return value
    return check


def _methods() -> dict[str, Any]:
    from mer_uq.methods import METHODS

    return METHODS


def _trainings() -> dict[str, Any]:
    from mer_uq.methods import TRAININGS

    return TRAININGS


def _settings_of(config_cls_name: str) -> Check:
    """A dict of mer_uq.config's ``config_cls_name`` fields: known keys, each value of the
    field's type and inside its range, and accepted by the dataclass's own checks."""
    def check(key: str, value: Any) -> dict[str, Any]:
        from mer_uq import config

        cls = getattr(config, config_cls_name)
        if not isinstance(value, dict):
            raise _Bad(f"must be an object of {config_cls_name} settings, got "
                       f"{_describe(value)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise _Bad(f"has unknown setting(s) {unknown}; known: {sorted(fields)}")
        for name, v in value.items():
            kind = type(fields[name].default)
            checker = {bool: _bool, int: _int(0), float: _float(0.0), str: _str}.get(kind)
            if checker is None:
                continue
            try:
                checker(name, v)
            except _Bad as bad:
                raise _Bad(f"{name} {bad}") from None
        try:
            cls(**value)
        except (TypeError, ValueError) as err:
            raise _Bad(str(err)) from None
        return value
    return check


def _scale(key: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or set(value) != {"min", "max", "neutral"}:
        raise _Bad(f"must be an object with min, max and neutral, got {_describe(value)}")
    for name in ("min", "max", "neutral"):
        try:
            _float()(name, value[name])
        except _Bad as bad:
            raise _Bad(f"{name} {bad}") from None
    if not value["min"] < value["max"]:
        raise _Bad(f"min must be below max, got {_describe(value)}")
    return value


def _object(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"must be an object, got {_describe(value)}")
    return value


def _feature_set(key: str, value: Any) -> dict[str, Any]:
    """One cell of the feature axis: {"label", "features", "feature_column"}."""
    if not isinstance(value, dict) or set(value) != {"label", "features", "feature_column"}:
        raise _Bad("must be an object with label, features and feature_column, got "
                   f"{_describe(value)}")
    _str("label", value["label"])
    for name in ("features", "feature_column"):
        try:
            _optional(_str)(name, value[name])
        except _Bad as bad:
            raise _Bad(f"{name} {bad}") from None
    return value


def _raters_item(key: str, value: Any) -> int | None:
    return None if value is None else _int(2)(key, value)


# key -> (required?, check). Required keys are the contract with the analysis.
_TOP_LEVEL: dict[str, tuple[bool, Check]] = {
    "deam_dir": (True, _optional(_str)),
    "split_file": (True, _optional(_str)),
    "fix_swap": (True, _bool),
    "include_2015": (True, _bool),
    "features": (True, _optional(_str)),
    "feature_column": (True, _optional(_str)),
    "allow_missing_features": (False, _bool),
    "methods": (True, _list(_one_of(_methods, "method"), distinct=True)),
    "trainings": (True, _list(_one_of(_trainings, "training key"), distinct=True)),
    "seeds": (True, _list(_int(0), distinct=True)),
    "seeds_per_trial": (False, _optional(_int(1))),
    "model": (True, _settings_of("FCNConfig")),
    "train": (True, _settings_of("TrainConfig")),
    "mc_passes": (True, _int(1)),
    "trials": (False, _list(_str, non_empty=False, distinct=True)),
    "created": (True, _str),
    "ratings": (False, _optional(_str)),
    "scale": (False, _optional(_scale)),
    "songs": (False, _optional(_str)),
    "synthetic": (False, _optional(_object)),
    "raters": (False, _optional(_list(_raters_item, distinct=True))),
    "train_fractions": (False, _optional(_list(_float(0.0, 1.0), distinct=True))),
    "subsample_seed": (False, _int(0)),
    "feature_sets": (False, _optional(_list(_feature_set, distinct=True))),
}
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
        except _Bad as bad:
            raise SweepRecordError(f"{where}: key {key!r} {bad}") from None
    if "train_fractions" in record and record["train_fractions"] is not None:
        bad = [f for f in record["train_fractions"] if not f > 0]
        if bad:
            raise SweepRecordError(f"{where}: key 'train_fractions' must hold shares in "
                                   f"(0, 1], got {bad}")
    return record
