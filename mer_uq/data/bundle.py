"""Rebuild the package's bundled resources from a DEAM folder (run by hand, rarely):

    python -m mer_uq.data.bundle /path/to/deam

copies the annotation and metadata files the default run reads (official layout kept),
converts the openSMILE song means CSV to the feature Parquet, and writes the default
split (seed 0). Kept as code so the bundle is reproducible, not hand-made.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from mer_uq.data.dataset import load_deam
from mer_uq.data.deam_files import (
    BUNDLED_DEAM_DIR,
    BUNDLED_FEATURES_FILE,
    BUNDLED_SPLIT_FILE,
    DYNAMIC_AVERAGED,
    METADATA,
    STATIC_AVERAGED,
    STATIC_PER_RATER,
)
from mer_uq.data.errors import DeamDataError
from mer_uq.data.features import FEATURE_NAMES_KEY, SOURCE_KEY, save_features
from mer_uq.data.splits import DEFAULT_SEED, make_split, write_split

OPENSMILE_CSV = Path("features", "opensmile_song_means.csv")
BUNDLED_FILES = (
    *STATIC_AVERAGED.values(),
    *STATIC_PER_RATER.values(),
    *DYNAMIC_AVERAGED.values(),
    *METADATA.values(),
)


def opensmile_csv_to_parquet(csv_path: Path, parquet_path: Path) -> Path:
    """song_id + numeric feature columns (CSV) -> feature Parquet with column 'features'
    and the feature names in the metadata."""
    try:
        frame = pd.read_csv(io.StringIO(csv_path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise DeamDataError(f"{csv_path}: cannot read feature CSV ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if "song_id" not in frame.columns:
        raise DeamDataError(f"{csv_path}: no 'song_id' column")
    names = [c for c in frame.columns if c != "song_id"]
    non_numeric = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise DeamDataError(f"{csv_path}: non-numeric feature column(s) {non_numeric[:5]}")
    return save_features(
        parquet_path,
        frame["song_id"].to_numpy(np.int64),
        {"features": frame[names].to_numpy(np.float32)},
        default_column="features",
        metadata={
            FEATURE_NAMES_KEY: json.dumps(names),
            SOURCE_KEY: "DEAM openSMILE features, per-song mean of the *_amean columns "
            "(Aljanaki et al. 2017)",
        },
    )


def build_bundle(source: Path, dest: Path = BUNDLED_DEAM_DIR) -> None:
    for rel in BUNDLED_FILES:
        src = source / rel
        if not src.is_file():
            raise DeamDataError(f"DEAM file missing: {src}")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
    opensmile_csv_to_parquet(source / OPENSMILE_CSV, BUNDLED_FEATURES_FILE)
    genres = load_deam(dest).songs.set_index("song_id")["genre"]
    write_split(make_split(genres, seed=DEFAULT_SEED), BUNDLED_SPLIT_FILE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="DEAM folder in the official layout")
    build_bundle(parser.parse_args(argv).source)


if __name__ == "__main__":
    main()
