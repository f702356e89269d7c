"""Checks that keep a sweep from writing where it must not, before anything starts.

* ``--out`` must be new or empty: a folder holding anything else (another sweep's record,
  a report, unrelated files) is never written over; a sweep folder is continued with
  ``--resume`` instead.
* ``--resume DIR`` takes methods, seeds, data and settings from DIR/sweep.json; a flag
  that would be ignored is refused by name instead of being dropped without a word.
* A path the file system cannot hold (a name over 255 bytes, bytes that are not UTF-8)
  and a read-only temporary folder (where a local Ray keeps its session) are one line,
  not a traceback from deep inside Ray or the file system.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mer_uq.sweep_folder import LOCK_FILE, SWEEP_JSON, SweepFolderError, read_sweep_json
from sweep.cli import OPTIONS, SweepOptions

# Options that still apply to a study read from its record (--resume, --from): where and
# how it runs, not what it trains (sweep.cli declares which).
RESUME_OPTIONS: frozenset[str] = frozenset(o.name for o in OPTIONS if o.beside_record)


def ignored_record_flags(options: SweepOptions, allowed: tuple[str, ...]) -> list[str]:
    """The flags given beside a record (--resume or --from) that it would ignore, as typed
    on the CLI, in --help's order: every option but the run's (RESUME_OPTIONS) and the
    folder options in ``allowed``."""
    return [o.flag_text for o in OPTIONS
            if o.name not in RESUME_OPTIONS and o.name not in allowed
            and getattr(options, o.name) != o.default]


def ignored_resume_flags(options: SweepOptions) -> list[str]:
    """The flags given beside ``--resume`` that it would ignore (--out among them: the
    resumed folder is where it writes)."""
    return ignored_record_flags(options, allowed=("resume",))


def refuse_ignored_resume_flags(options: SweepOptions) -> None:
    flags = ignored_resume_flags(options)
    if flags:
        raise SweepFolderError(
            f"--resume {options.resume} continues the sweep its {SWEEP_JSON} records; it "
            f"would ignore {', '.join(flags)}: drop them (or start a new sweep with --out)")


def refuse_ignored_from_flags(options: SweepOptions) -> None:
    """``--from`` repeats the study its record describes; a flag that would change that
    study is refused by name (start a new sweep with flags to change it)."""
    flags = ignored_record_flags(options, allowed=("from_record", "out"))
    if flags:
        raise SweepFolderError(
            f"--from {options.from_record} repeats the study it records; it would ignore "
            f"{', '.join(flags)}: drop them (or start a new sweep with those flags)")


def check_path_text(path: Path, flag: str) -> None:
    """A path the file system can hold: UTF-8 text, no component over the name limit."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SweepFolderError(f"{flag} {text.encode('utf-8', 'backslashreplace').decode()}: "
                               "the path has bytes that are not UTF-8; choose a plain name"
                               ) from None
    for part in Path(path).parts:
        if len(os.fsencode(part)) > 255:
            raise SweepFolderError(f"{flag}: the path component {part[:40]}... is "
                                   f"{len(os.fsencode(part))} bytes; file systems allow 255")


def refuse_foreign_out(sweep_dir: Path) -> None:
    """``--out`` is new or empty; anything else is never written over."""
    if not sweep_dir.is_dir():
        return
    entries = sorted(p.name for p in sweep_dir.iterdir() if p.name != LOCK_FILE)
    if not entries:
        return
    if _is_sweep(sweep_dir):
        raise SweepFolderError(f"--out {sweep_dir} already holds a sweep ({SWEEP_JSON}); "
                               f"continue it with --resume {sweep_dir}, or choose a new --out")
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise SweepFolderError(f"--out {sweep_dir} is not empty ({shown}) and is not a sweep "
                           "folder; choose a new or empty --out")


def _is_sweep(folder: Path) -> bool:
    try:
        read_sweep_json(folder)
    except SweepFolderError:
        return False
    return True


def check_local_ray_tmp() -> None:
    """A local Ray keeps its session under the temporary folder (RAY_TMPDIR, else
    TMPDIR, else /tmp) and its token under ~/.ray: both must be writable, or ray.init
    fails with a traceback."""
    folder = Path(os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp")
    ray_dir = folder / "ray"  # Ray's own folder there (it may exist, owned by us)
    try:
        tempfile.TemporaryFile(dir=ray_dir if ray_dir.is_dir() else folder).close()
    except OSError as err:
        raise SweepFolderError(f"the temporary folder {folder} is not writable "
                               f"({err.strerror}); a local Ray keeps its session there: set "
                               "TMPDIR (or RAY_TMPDIR) to a writable folder") from None
    home_ray = Path(os.path.expanduser("~")) / ".ray"  # where Ray keeps its auth token
    try:
        tempfile.TemporaryFile(dir=home_ray if home_ray.is_dir() else home_ray.parent).close()
    except OSError as err:
        raise SweepFolderError(f"the home folder {home_ray.parent} is not writable "
                               f"({err.strerror}); a local Ray keeps its token in "
                               f"{home_ray}: set HOME to a writable folder") from None


@contextlib.contextmanager
def tune_stops_cleanly() -> Iterator[None]:
    """Tune's own state failing (a full disk: its experiment state or a result pickle cut
    short, read back as ``EOFError: Ran out of input``) ends the run like failed trials:
    one line here, then the sweep's "failed ... --resume" line for the missing trials. The
    finished trial files and sweep.json are untouched, so --resume completes later."""
    try:
        yield
    except (EOFError, OSError) as err:
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        print(f"[sweep] Ray Tune stopped ({reason}); is the disk full? Trials that finished "
              "are kept", file=sys.stderr, flush=True)
