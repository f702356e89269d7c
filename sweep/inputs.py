"""Load the dataset and the feature table ONCE, in the driver, and check they fit.

The check happens here, before Ray starts any trial: a feature file that lacks songs of
the split would otherwise fail every trial, on every retry, on every node.
"""

from __future__ import annotations

from typing import Any

from mer_uq.data import load_deam
from mer_uq.data.errors import DeamDataError
from mer_uq.data.features import FeatureTable, load_features
from mer_uq.schema import SPLITS
from sweep.study import Study


class FeatureCoverageError(ValueError):
    """The feature table lacks songs the split needs."""


def load_inputs(study: Study) -> tuple[Any, FeatureTable]:
    """(DeamDataset, FeatureTable) for the study; every split's song has a feature row."""
    dataset = load_deam(
        study.deam_dir,
        include_2015=study.include_2015,
        fix_swap=study.fix_swap,
        split_file=study.split_file,
    )
    features = load_features(study.features, study.feature_column)
    source = study.features or "the bundled openSMILE features"
    for split in SPLITS:
        try:
            features.rows(dataset.song_ids(split))
        except DeamDataError as err:
            raise FeatureCoverageError(
                f"features {source} do not cover the {split} split: {err}"
            ) from err
    return dataset, features
