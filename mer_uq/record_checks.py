"""The checks of sweep.json's values: one small function per kind of value.

Each check takes (key path, value) and returns the value, or raises ``Bad`` saying why; the
schema (mer_uq.sweep_record) turns that into one error naming the file and the key. They
live apart from the schema so that the option declarations (mer_uq.study_options) can name
the check of the key they record without importing the schema that is built from them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

# Largest seed, count or integer setting accepted: numpy's and torch's seeds are 32-bit,
# and no setting of a sweep is larger (10**30 epochs is a typo, not a plan).
MAX_INT = 2**31 - 1


Check = Callable[[str, Any], Any]  # (key path, value) -> the value, or raises Bad


class Bad(Exception):
    """Why a value fails; the schema turns it into a SweepRecordError naming file and key."""


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def integer(low: int = 0, high: int = MAX_INT) -> Check:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Bad(f"must be an integer, got {describe(value)}")
        if not low <= value <= high:
            raise Bad(f"must be in [{low}, {high}], got {describe(value)}")
        return value
    return check


def number(low: float = -math.inf, high: float = math.inf) -> Check:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Bad(f"must be a number, got {describe(value)}")
        if not math.isfinite(value) or not low <= value <= high:
            raise Bad(f"must be a finite number in [{low}, {high}], got {describe(value)}")
        return value
    return check


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Bad(f"must be true or false, got {describe(value)}")
    return value


def text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Bad(f"must be a non-empty string, got {describe(value)}")
    return value


def optional(check: Check) -> Check:
    def optional(key: str, value: Any) -> Any:
        return None if value is None else check(key, value)
    return optional


def list_of(item: Check, *, non_empty: bool = True, distinct: bool = False) -> Check:
    def check(key: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise Bad(f"must be a list, got {describe(value)}")
        if non_empty and not value:
            raise Bad("must not be empty")
        items = []
        for i, v in enumerate(value):
            try:
                items.append(item(f"{key}[{i}]", v))
            except Bad as bad:
                raise Bad(f"item {i}: {bad}") from None
        if distinct and len({repr(v) for v in items}) != len(items):
            raise Bad(f"must hold distinct values, got {describe(value)}")
        return items
    return check


def one_of(names: Callable[[], dict[str, Any]], what: str) -> Check:
    def check(key: str, value: Any) -> str:
        known = names()
        if not isinstance(value, str) or value not in known:
            raise Bad(f"unknown {what} {describe(value)}; known: {', '.join(known)}")
        return value
    return check


def method_names() -> dict[str, Any]:
    from mer_uq.methods import METHODS

    return METHODS


def training_names() -> dict[str, Any]:
    from mer_uq.methods import TRAININGS

    return TRAININGS


def settings_of(config_cls_name: str) -> Check:
    """A dict of mer_uq.config's ``config_cls_name`` fields: known keys, each value of the
    field's type and inside its range, and accepted by the dataclass's own checks."""
    def check(key: str, value: Any) -> dict[str, Any]:
        from mer_uq import config

        cls = getattr(config, config_cls_name)
        if not isinstance(value, dict):
            raise Bad(f"must be an object of {config_cls_name} settings, got "
                       f"{describe(value)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise Bad(f"has unknown setting(s) {unknown}; known: {sorted(fields)}")
        for name, v in value.items():
            kind = type(fields[name].default)
            checker = {bool: boolean, int: integer(0), float: number(0.0), str: text}.get(kind)
            if checker is None:
                continue
            try:
                checker(name, v)
            except Bad as bad:
                raise Bad(f"{name} {bad}") from None
        try:
            cls(**value)
        except (TypeError, ValueError) as err:
            raise Bad(str(err)) from None
        return value
    return check


def scale(key: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or set(value) != {"min", "max", "neutral"}:
        raise Bad(f"must be an object with min, max and neutral, got {describe(value)}")
    for name in ("min", "max", "neutral"):
        try:
            number()(name, value[name])
        except Bad as bad:
            raise Bad(f"{name} {bad}") from None
    if not value["min"] < value["max"]:
        raise Bad(f"min must be below max, got {describe(value)}")
    return value


def json_object(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Bad(f"must be an object, got {describe(value)}")
    return value


def feature_set(key: str, value: Any) -> dict[str, Any]:
    """One cell of the feature axis: {"label", "features", "feature_column"}."""
    if not isinstance(value, dict) or set(value) != {"label", "features", "feature_column"}:
        raise Bad("must be an object with label, features and feature_column, got "
                   f"{describe(value)}")
    text("label", value["label"])
    for name in ("features", "feature_column"):
        try:
            optional(text)(name, value[name])
        except Bad as bad:
            raise Bad(f"{name} {bad}") from None
    return value


def raters_item(key: str, value: Any) -> int | None:
    return None if value is None else integer(2)(key, value)
