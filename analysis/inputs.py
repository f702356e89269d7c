"""Reload the dataset and features a sweep used, from its sweep.json.

The trial files hold predictions only; targets, ratings and features must come from the
same DEAM folder, split file, swap setting and feature table the sweep trained on, or
every number in the report would be scored against the wrong songs. sweep.json records
them (null = the bundled default), and this module turns that record back into objects.
"""

from __future__ import annotations

from typing import Any

from mer_uq.data.dataset import DeamDataset
from mer_uq.data.features import FeatureTable, restrict_to_features
from mer_uq.sources import load_dataset, load_feature_table


def load_sweep_dataset(config: dict[str, Any]) -> DeamDataset:
    """The DeamDataset of a sweep; keys missing from the config take load_deam's defaults.
    A sweep run with --allow-missing-features trained on the songs its features cover:
    the same songs are dropped here, or the report would score songs never predicted."""
    dataset = load_dataset(config)  # DEAM folder, generic table or synthetic (mer_uq.sources)
    if config.get("allow_missing_features"):
        dataset, _ = restrict_to_features(dataset, load_sweep_features(config))
    return dataset


def load_sweep_features(config: dict[str, Any]) -> FeatureTable:
    """The feature table of a sweep (None -> the bundled openSMILE song means)."""
    return load_feature_table(config)
