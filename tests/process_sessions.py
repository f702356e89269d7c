"""Finding the processes a test started, so that it can stop exactly those and nothing
else (other Ray instances may be running on the same machine)."""

from __future__ import annotations

from pathlib import Path


def session_members(sid: int) -> list[int]:
    """PIDs of the live processes whose session id is ``sid`` (from /proc): a subprocess
    started with ``start_new_session=True`` leads a session that its children inherit."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state ppid pgrp session
            members.append(int(stat.parent.name))
    return members
