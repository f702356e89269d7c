"""Atomic text and byte writes for the report folder.

A report is read while a sweep may still be writing, and a crashed run must never leave a
half-written table that looks complete; the temp-file-then-rename mechanics are mer_uq's,
shared with every other writer in the project.
"""

from __future__ import annotations

from pathlib import Path

from mer_uq.data.atomic import write_atomically as write_atomic

__all__ = ["write_atomic", "write_bytes_atomic", "write_text_atomic"]


def write_text_atomic(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write bytes atomically."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))
