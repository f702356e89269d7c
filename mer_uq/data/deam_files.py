"""Where each file sits in a DEAM folder laid out as the official release, and where the
copy bundled with the package lives.

Only the static (song-level) annotations, the averaged dynamic annotations (for the swap
audit) and the metadata (for genres) are read; audio and per-rater dynamic files are not
needed by the data layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mer_uq.data.errors import DeamDataError

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
BUNDLED_DEAM_DIR = RESOURCES_DIR / "deam"
BUNDLED_SPLIT_FILE = RESOURCES_DIR / "splits" / "deam_default_split.csv"
BUNDLED_FEATURES_FILE = RESOURCES_DIR / "features" / "opensmile_song_means.parquet"

_AVERAGED = Path("annotations", "annotations averaged per song")
_PER_RATER = Path("annotations", "annotations per each rater")

STATIC_AVERAGED = {
    "2013-2014": _AVERAGED / "song_level" / "static_annotations_averaged_songs_1_2000.csv",
    "2015": _AVERAGED / "song_level" / "static_annotations_averaged_songs_2000_2058.csv",
}
STATIC_PER_RATER = {
    "2013-2014": _PER_RATER / "song_level" / "static_annotations_songs_1_2000.csv",
    "2015": _PER_RATER / "song_level" / "static_annotations_songs_2000_2058.csv",
}
DYNAMIC_AVERAGED = {
    "valence": _AVERAGED / "dynamic (per second annotations)" / "valence.csv",
    "arousal": _AVERAGED / "dynamic (per second annotations)" / "arousal.csv",
}
METADATA = {year: Path("metadata", f"metadata_{year}.csv") for year in (2013, 2014, 2015)}


@dataclass(frozen=True)
class DeamFiles:
    """The resolved paths one load reads. ``dynamic`` is None when the averaged dynamic
    files are absent: the swap audit then falls back to the known id range."""

    root: Path
    static_averaged: tuple[Path, ...]
    static_per_rater: tuple[Path, ...]
    metadata: tuple[Path, ...]
    dynamic: dict[str, Path] | None


def resolve_files(deam_dir: Path | str | None, include_2015: bool) -> DeamFiles:
    """Check up front that every file the load needs exists, so a missing one is reported
    by its path before any parsing starts."""
    root = BUNDLED_DEAM_DIR if deam_dir is None else Path(deam_dir)
    if not root.is_dir():
        raise DeamDataError(f"DEAM folder not found: {root}")
    keys = ("2013-2014", "2015") if include_2015 else ("2013-2014",)
    years = (2013, 2014, 2015) if include_2015 else (2013, 2014)
    files = DeamFiles(
        root=root,
        static_averaged=tuple(root / STATIC_AVERAGED[k] for k in keys),
        static_per_rater=tuple(root / STATIC_PER_RATER[k] for k in keys),
        metadata=tuple(root / METADATA[y] for y in years),
        dynamic=None,
    )
    for path in (*files.static_averaged, *files.static_per_rater, *files.metadata):
        if not path.is_file():
            raise DeamDataError(f"DEAM file missing: {path}")
    dynamic = {dim: root / rel for dim, rel in DYNAMIC_AVERAGED.items()}
    if all(p.is_file() for p in dynamic.values()):
        return replace(files, dynamic=dynamic)
    return files
