"""Load the dataset and the feature table ONCE, in the driver, and check they fit.

The check happens here, before Ray starts any trial: a feature file that lacks songs of
the split would otherwise fail every trial, on every retry, on every node.
"""

from __future__ import annotations

from typing import Any

from mer_uq.data.errors import DeamDataError
from mer_uq.data.features import FeatureTable, restrict_to_features
from mer_uq.schema import SPLITS
from mer_uq.sources import load_dataset, load_feature_table
from sweep.study import Study


class FeatureCoverageError(ValueError):
    """The feature table lacks songs the split needs."""


def load_inputs(study: Study) -> tuple[Any, FeatureTable | dict[str, FeatureTable]]:
    """(DeamDataset, FeatureTable) for the study; every split's song has a feature row.

    With ``allow_missing_features`` the songs without a row leave the dataset instead (the
    driver prints how many per split; sweep.json records the flag and the analysis reloads
    the dataset the same way). With a feature axis, the tables by feature-set label."""
    record = dict(study.settings)  # DEAM folder, generic table or synthetic data
    dataset = load_dataset(record)
    features = load_feature_table(record)
    source = study.features or "the bundled openSMILE features"
    if study.allow_missing_features:
        dataset, dropped = restrict_to_features(dataset, features)
        counts = ", ".join(f"{split} {len(dropped[split])}" for split in SPLITS)
        print(f"[sweep] --allow-missing-features: {sum(map(len, dropped.values()))} song(s) "
              f"without features dropped ({counts}); running on "
              + ", ".join(f"{split} {len(dataset.song_ids(split))}" for split in SPLITS),
              flush=True)
        for split in SPLITS:
            if len(dataset.song_ids(split)) == 0:
                raise FeatureCoverageError(f"features {source} cover no song of the {split} split")
    _check_covers(features, dataset, f"features {source}",
                  " (to run on the covered songs only, pass --allow-missing-features)")
    sets = study.feature_sets
    if sets is None:
        return dataset, features
    # The feature axis: every set loaded once here and checked like the first; the trial
    # picks its own by label (sweep.experiment.train_trial).
    tables = {sets[0]["label"]: features}
    for item in sets[1:]:
        table = load_feature_table({**record, "features": item["features"],
                                    "feature_column": item["feature_column"]})
        _check_covers(table, dataset, f"features {item['features'] or 'bundled'} / "
                      f"{item['feature_column']}", "")
        tables[item["label"]] = table
    return dataset, tables


def _check_covers(table: FeatureTable, dataset: Any, name: str, hint: str) -> None:
    """One line naming the feature table and the first split it does not cover."""
    for split in SPLITS:
        try:
            table.rows(dataset.song_ids(split))
        except DeamDataError as err:
            raise FeatureCoverageError(f"{name} do not cover the {split} split: {err}{hint}"
                                       ) from err
