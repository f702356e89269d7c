"""One writer per sweep folder: a lock file that names the process holding it.

Two ``--resume`` of one folder at once would both train every pending trial and race
each other's files. The sweep that writes holds DIR/.sweep.lock (created exclusively,
holding its PID and host); a second one stops with one line naming that PID. A lock
left by a process that no longer runs (kill -9, a crashed machine) is taken over, so a
crash never makes a folder unusable. A lock written on another host cannot be checked
from here and is respected; the message says which host and file to remove.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from mer_uq.sweep_folder import LOCK_FILE, TRIALS_DIR, SweepFolderError


class SweepInUseError(SweepFolderError):
    """The sweep folder is being written by another live process."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(lock: Path) -> dict[str, object] | None:
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def refuse_linked_trials(sweep_dir: Path) -> None:
    """A ``trials/`` that is a symbolic link would make this sweep write into another
    folder (another sweep's results): refused, never followed."""
    trials = Path(sweep_dir) / TRIALS_DIR
    if trials.is_symlink():
        raise SweepFolderError(f"{trials} is a symbolic link (to {os.readlink(trials)}); a "
                               "sweep writes only into its own folder: replace the link by "
                               "a copy or use a new --out")
    if trials.exists() and not trials.is_dir():
        raise SweepFolderError(f"{trials} is not a folder")


def acquire(sweep_dir: Path) -> Path:
    """Create the lock of ``sweep_dir`` (the folder must exist); SweepInUseError when a
    live process holds it. Returns the lock's path."""
    lock = Path(sweep_dir) / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(3):  # a stale lock is removed, then the exclusive create is retried
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(lock)
            pid = holder.get("pid") if holder else None
            host = holder.get("host") if holder else None
            if isinstance(pid, int) and host not in (None, me["host"]):
                raise SweepInUseError(
                    f"{sweep_dir} is in use by PID {pid} on {host} (lock {lock}); wait for "
                    "that sweep, or remove the lock if it no longer runs") from None
            if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
                raise SweepInUseError(f"{sweep_dir} is in use by PID {pid} (a sweep writing "
                                      f"into it; lock {lock}); wait for it to end") from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # stale: its process is gone (or the file is unreadable)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(me, out)
        return lock
    raise SweepInUseError(f"{sweep_dir}: could not take the lock {lock}")


def release(lock: Path) -> None:
    """Remove the lock if this process still holds it."""
    holder = _holder(lock)
    if holder and holder.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


@contextlib.contextmanager
def holding(sweep_dir: Path) -> Iterator[Path]:
    """Hold the lock of ``sweep_dir`` (created if needed) while the block runs. A folder
    this call created and that holds nothing afterwards is removed again, so a request
    that fails early leaves no empty folder behind."""
    sweep_dir = Path(sweep_dir)
    created = not sweep_dir.exists()
    refuse_linked_trials(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = acquire(sweep_dir)
    try:
        yield lock
    finally:
        release(lock)
        if created:
            with contextlib.suppress(OSError):
                sweep_dir.rmdir()  # only when empty
