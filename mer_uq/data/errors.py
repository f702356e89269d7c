"""One exception type for every data problem, so that callers (the CLI, the sweep) can
catch bad input in one place and show its message instead of a pandas traceback."""

from __future__ import annotations

from collections.abc import Sequence

SHOWN_IDS = 10  # song ids quoted in one message; the rest are counted


class DeamDataError(ValueError):
    """Bad or missing DEAM input; the message names the file, row, song or key at fault."""


def format_ids(values: Sequence[int]) -> str:
    """'3, 5, 9' or '1, 2, ... (250 in all)': names the culprits without flooding a log."""
    items = [str(int(v)) for v in values]
    shown = ", ".join(items[:SHOWN_IDS])
    return shown + (f" ... ({len(items)} in all)" if len(items) > SHOWN_IDS else "")
