"""Argument types shared by the command lines: a count with its range, checked when the
flag is parsed, so ``--repeats 0`` is one usage line (exit 2), never a NaN printed as a
result or a traceback from deep inside the computation."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def count(minimum: int) -> Callable[[str], int]:
    """argparse ``type``: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value
    parse.__name__ = f"count>={minimum}"  # argparse names the type in its message
    return parse
