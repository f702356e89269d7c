"""One exception type for every data problem, so that callers (the CLI, the sweep) can
catch bad input in one place and show its message instead of a pandas traceback."""

from __future__ import annotations


class DeamDataError(ValueError):
    """Bad or missing DEAM input; the message names the file, row, song or key at fault."""
