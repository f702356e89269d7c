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
import dataclasses
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mer_uq.sweep_folder import LOCK_FILE, SWEEP_JSON, SweepFolderError, read_sweep_json
from sweep.cli import SweepOptions

# Options that still apply to a resumed sweep: where and how it runs, not what it trains.
RESUME_OPTIONS: frozenset[str] = frozenset({
    "resume", "address", "storage_path", "cpus_per_trial", "gpus_per_trial",
    "max_concurrent", "max_failures", "report", "wandb", "wandb_project", "wandb_mode",
})  # fmt: skip


def _flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def ignored_resume_flags(options: SweepOptions) -> list[str]:
    """The flags given beside ``--resume`` that it would ignore, as typed on the CLI."""
    default = SweepOptions()
    flags: list[str] = []
    for spec in dataclasses.fields(SweepOptions):
        name = spec.name
        if name in RESUME_OPTIONS or getattr(options, name) == getattr(default, name):
            continue
        if name in ("model_overrides", "train_overrides"):
            flags += [_flag(knob) for knob in getattr(options, name)]
        elif name == "report":
            continue
        else:
            flags.append(_flag(name))
    return flags


def refuse_ignored_resume_flags(options: SweepOptions) -> None:
    flags = ignored_resume_flags(options)
    if flags:
        raise SweepFolderError(
            f"--resume {options.resume} continues the sweep its {SWEEP_JSON} records; it "
            f"would ignore {', '.join(flags)}: drop them (or start a new sweep with --out)")


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
