"""Which data a study runs on: a DEAM folder, a generic per-rater table, or synthetic data
with a known SD, chosen by the keys a sweep records in sweep.json.

The sweep's driver and the analysis both rebuild the dataset from that record; doing it in
one function is what guarantees the report scores the very songs, targets and split the
trials trained on. Keys (all optional; a missing key takes the default its option declares,
mer_uq.study_options: the bundled DEAM copy):

    deam_dir, include_2015, fix_swap, split_file   a DEAM folder (mer_uq.data.load_deam)
    ratings, scale {min, max, neutral}, songs       a generic table (mer_uq.data.generic)
    synthetic {n_songs, n_features, n_raters, sd_strength, seed}   mer_uq.synthetic
    features, feature_column                        the feature Parquet (not for synthetic)
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from mer_uq.data.dataset import DeamDataset, load_deam
from mer_uq.data.features import FeatureTable, load_features, restrict_to_features
from mer_uq.data.generic import RatingScale, load_generic
from mer_uq.sweep_record import record_settings

SYNTHETIC_KEYS: tuple[str, ...] = ("n_songs", "n_features", "n_raters", "sd_strength", "seed")

# The kinds of data a sweep can run on (``data_source``): what a reader that treats them
# differently (the report's comparison with the paper, which is DEAM's) asks for.
DEAM, GENERIC, SYNTHETIC = "deam", "generic", "synthetic"
DATA_SOURCES: tuple[str, ...] = (DEAM, GENERIC, SYNTHETIC)


@lru_cache(maxsize=4)
def _synthetic(settings: tuple[tuple[str, Any], ...]) -> tuple[DeamDataset, FeatureTable]:
    from mer_uq.synthetic import make_synthetic

    return make_synthetic(**dict(settings))


def synthetic_settings(record: Mapping[str, Any]) -> tuple[tuple[str, Any], ...] | None:
    """The make_synthetic keyword arguments a record asks for, or None (real data)."""
    settings = record_settings(record)["synthetic"]
    if not settings:
        return None
    unknown = sorted(set(settings) - set(SYNTHETIC_KEYS))
    if unknown:
        raise ValueError(f"synthetic settings {unknown} unknown; known: {list(SYNTHETIC_KEYS)}")
    return tuple(sorted(settings.items()))


def _synthetic_data(record: Mapping[str, Any]) -> tuple[DeamDataset, FeatureTable]:
    settings = synthetic_settings(record)
    if settings is None:
        raise ValueError("the sweep record asks for no synthetic data")
    return _synthetic(settings)


def data_source(record: Mapping[str, Any]) -> str:
    """Which kind of data a record runs on: SYNTHETIC (a ``synthetic`` setting), GENERIC (a
    ``ratings`` table) or DEAM (neither: a DEAM folder, the bundled copy by default). The
    one place that decides it, so the loader and every reader agree."""
    if synthetic_settings(record) is not None:
        return SYNTHETIC
    return GENERIC if record_settings(record)["ratings"] else DEAM


def describe_data(record: Mapping[str, Any]) -> str:
    """The data a record runs on, in one line for a person (the report opens with it):
    DEAM's years and label version, the generic table's files and scale, or the synthetic
    settings. Says what was asked, reads no file."""
    settings = record_settings(record)
    source = data_source(record)
    if source == SYNTHETIC:
        listed = ", ".join(f"{k}={v}" for k, v in synthetic_settings(record) or ())
        return f"synthetic data with a known SD (mer_uq.synthetic: {listed})"
    if source == GENERIC:
        scale = {k: f"{v:g}" if isinstance(v, int | float) else str(v)
                 for k, v in (settings["scale"] or {}).items()}
        songs = f"songs {settings['songs']}" if settings["songs"] else "no song table"
        return (f"generic ratings table {settings['ratings']} (scale {scale.get('min', '?')}-"
                f"{scale.get('max', '?')}, neutral {scale.get('neutral', 'midpoint')}), "
                f"{songs}")
    swap = "label swap corrected" if settings["fix_swap"] else "labels as shipped, swap kept"
    return f"DEAM {'2013-2015' if settings['include_2015'] else '2013+2014'} ({swap})"


def load_dataset(record: Mapping[str, Any]) -> DeamDataset:
    """The study's DeamDataset (see the module docstring for the keys)."""
    source = data_source(record)
    if source == SYNTHETIC:
        return _synthetic_data(record)[0]
    settings = record_settings(record)
    if source == GENERIC:
        return load_generic(
            settings["ratings"],
            RatingScale.from_dict(settings["scale"] or {}, "sweep record 'scale'"),
            settings["songs"],
            settings["split_file"],
        )
    return load_deam(
        settings["deam_dir"],
        include_2015=bool(settings["include_2015"]),
        fix_swap=bool(settings["fix_swap"]),
        split_file=settings["split_file"],
    )


def load_feature_table(record: Mapping[str, Any]) -> FeatureTable:
    """The study's feature table (synthetic data brings its own)."""
    if data_source(record) == SYNTHETIC:
        return _synthetic_data(record)[1]
    settings = record_settings(record)
    return load_features(settings["features"], settings["feature_column"])


def load_trained_dataset(record: Mapping[str, Any]) -> DeamDataset:
    """The dataset the sweep's trials trained and were scored on: with
    ``allow_missing_features`` the songs without a feature row are dropped here too, or
    the report would score songs that were never predicted."""
    dataset = load_dataset(record)
    if record_settings(record)["allow_missing_features"]:
        dataset, _ = restrict_to_features(dataset, load_feature_table(record))
    return dataset
