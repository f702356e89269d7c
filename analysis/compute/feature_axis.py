"""Which representation carries the spread? The same methods on several feature sets.

The paper's discussion suspects that the foundation model discards rater-spread
information. That is testable by training the same methods on other representations
(openSMILE, a subset of its columns, each layer of MusicFM or of any transformers model
embedded by ``sweep.embed``) and asking, per feature set, how well the predicted mean and
the predicted SD follow the raters', against the reliability ceiling of the same test songs.

``python -m analysis.feature_axis DIR_A DIR_B [DIR_C ...] --out OUT`` reads one sweep folder
per feature set (each sweep.json names its features and feature column), refuses folders
that do not share their test songs and labels (every comparison is paired on the same
songs), and writes OUT/feature_axis.{md,csv}, OUT/feature_axis_comparisons.csv and
OUT/feature_axis.png. No number is new: the cells are analysis.compute.table_cells' (Pearson r of
mer_uq.scores, the report's bootstrap over test songs, one index matrix for every feature
set, so differences are paired), the ceilings analysis.compute.ceilings', the paired tests
analysis.compute.bootstrap's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compute.bootstrap import paired_bootstrap, paired_seed_test, resample_indices
from analysis.compute.pipeline import ReportData, load_reference_rows
from analysis.compute.rows import EVAL_SPLIT, PredictionRow, build_rows
from analysis.compute.table_cells import TableResult, compute_tables, empirical_targets
from analysis.read.reference_predictions import reference_cell, sweep_feature_sets
from analysis.read.sweep_results import FEATURE_SET_COLUMN
from mer_uq import schema
from mer_uq.data.dataset import DeamDataset
from mer_uq.scores import MEAN, PEARSON, SD

SEPARATOR = " | "  # feature set and row key in a combined row key
TARGET_TABLES = {MEAN: "table2", SD: "table3"}


class FeatureAxisError(ValueError):
    """Folders that cannot be compared (one line, exit 2)."""


@dataclass
class FeatureSet:
    """One sweep folder: its feature set's name and its table rows on the test songs."""

    name: str
    folder: Path
    config: dict[str, Any]
    rows: list[PredictionRow]
    source: str = ""  # the table (and column) it was trained on, for the reader


def feature_set_name(config: dict[str, Any]) -> str:
    """'<table stem>[/<column>]' from sweep.json; the bundled table is 'openSMILE'."""
    features = config.get("features")
    name = Path(str(features)).stem if features else "openSMILE"
    column = config.get("feature_column")
    return f"{name}/{column}" if column else name


def _load(folder: Path) -> tuple[FeatureSet, DeamDataset, np.ndarray]:
    sweep, dataset, song_ids, rows = load_reference_rows(folder, FeatureAxisError)
    fs = FeatureSet(feature_set_name(sweep.config), folder, sweep.config, rows, str(folder))
    return fs, dataset, song_ids


def load_feature_sets(folders: list[Path]) -> tuple[list[FeatureSet], DeamDataset, np.ndarray]:
    """Every folder's rows, checked to share test songs and labels; names made unique."""
    if len(folders) < 2:
        raise FeatureAxisError("give at least two sweep folders (one per feature set)")
    resolved = [Path(f).resolve() for f in folders]
    twice = sorted({str(f) for f in folders if resolved.count(Path(f).resolve()) > 1})
    if twice:
        raise FeatureAxisError(f"{', '.join(twice)}: given twice; each feature set is one "
                               "sweep folder")
    loaded = [_load(f) for f in folders]
    first_set, dataset, song_ids = loaded[0]
    for fs, other, ids in loaded[1:]:
        if not np.array_equal(ids, song_ids):
            raise FeatureAxisError(f"{fs.folder}: other test songs than {first_set.folder} "
                                   "(split, dataset or --allow-missing-features differ); a "
                                   "paired comparison needs the same songs")
        if bool(fs.config.get("fix_swap", True)) != bool(first_set.config.get("fix_swap",
                                                                               True)):
            raise FeatureAxisError(f"{fs.folder}: other label version than "
                                   f"{first_set.folder} (--keep-swap in one only)")
        del other
    sets = [fs for fs, _, _ in loaded]
    names = [fs.name for fs in sets]
    for fs in sets:
        if names.count(fs.name) > 1:
            fs.name = f"{fs.name} ({fs.folder.name})"
    return sets, dataset, song_ids


def combined_rows(sets: list[FeatureSet]) -> list[PredictionRow]:
    """All rows of all feature sets, keys prefixed with the feature set: one table."""
    return [replace(row, key=f"{fs.name}{SEPARATOR}{row.key}") for fs in sets
            for row in fs.rows]


def split_key(key: str) -> tuple[str, str]:
    feature_set, _, row_key = key.rpartition(SEPARATOR)
    return feature_set, row_key


def correlation_table(cells: pd.DataFrame, ceilings: pd.DataFrame) -> pd.DataFrame:
    """Pearson r of predicted mean (Table 2) and SD (Table 3) per feature set, row and
    dimension, with the 95 % bootstrap band and the ceiling of the same cell."""
    r = cells[cells["metric"] == PEARSON].copy()
    parts = [split_key(k) for k in r["row_key"]]
    r["feature_set"] = [p[0] for p in parts]
    r["row"] = [p[1] for p in parts]
    merged = r.merge(ceilings[ceilings["metric"] == PEARSON].drop(columns=["n_songs"]),
                     on=["target", "dimension", "metric"], how="left")
    keep = ["feature_set", "row", "row_label", "single", "n_seeds", "target", "dimension",
            "value", "sd_over_seeds", "ci_low", "ci_high", "ceiling", "ceiling_ci_low",
            "ceiling_ci_high"]
    return merged[[c for c in keep if c in merged.columns]].reset_index(drop=True)


def paired_comparisons(result: TableResult, sets: list[FeatureSet]) -> pd.DataFrame:
    """Every pair of feature sets, per row both have, target and dimension: difference of
    Pearson r on the same bootstrap resamples of the same test songs, and the seed-paired
    Wilcoxon test where the row has seeds."""
    per_seed = result.per_seed
    lines = []
    names = [fs.name for fs in sets]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            keys_a = {split_key(k)[1] for (_, k, _, _) in result.boot if split_key(k)[0] == a}
            keys_b = {split_key(k)[1] for (_, k, _, _) in result.boot if split_key(k)[0] == b}
            for row in sorted(keys_a & keys_b):
                for target, table in TARGET_TABLES.items():
                    for dim in schema.DIMENSIONS:
                        ka, kb = f"{a}{SEPARATOR}{row}", f"{b}{SEPARATOR}{row}"
                        boot_a = result.boot.get((table, ka, dim, PEARSON))
                        boot_b = result.boot.get((table, kb, dim, PEARSON))
                        if boot_a is None or boot_b is None:
                            continue
                        cells = result.cells
                        point = {k: cells[(cells["table"] == table) & (cells["row_key"] == k)
                                          & (cells["dimension"] == dim)
                                          & (cells["metric"] == PEARSON)]["value"].iloc[0]
                                 for k in (ka, kb)}
                        comp = paired_bootstrap(point[ka], point[kb], boot_a, boot_b)
                        seeds = {k: dict(zip(*[per_seed[(per_seed["table"] == table)
                                                        & (per_seed["row_key"] == k)
                                                        & (per_seed["dimension"] == dim)
                                                        & (per_seed["metric"] == PEARSON)][c]
                                               for c in ("seed", "value")], strict=True))
                                 for k in (ka, kb)}
                        n_pairs, p_seed = paired_seed_test(seeds[ka], seeds[kb])
                        lines.append({"A": a, "B": b, "row": row, "target": target,
                                      "dimension": dim, "r_A": point[ka], "r_B": point[kb],
                                      "difference": comp.difference, "ci_low": comp.ci_low,
                                      "ci_high": comp.ci_high, "p_bootstrap": comp.p_value,
                                      "seed_pairs": n_pairs, "p_wilcoxon": p_seed})
    return pd.DataFrame(lines)


CORRELATIONS_STEM, COMPARISONS_STEM = "feature_axis", "feature_axis_comparisons"


@dataclass(frozen=True)
class FeatureAxisResult:
    """The numbers of the feature-set comparison (analysis.present.feature_axis_section
    shows them)."""

    sets: list[FeatureSet]
    n_songs: int
    n_boot: int
    correlations: pd.DataFrame  # correlation_table
    comparisons: pd.DataFrame  # paired_comparisons

    def frames(self) -> dict[str, pd.DataFrame]:
        """Its tables by file stem."""
        return {CORRELATIONS_STEM: self.correlations, COMPARISONS_STEM: self.comparisons}


def feature_axis_result(sets: list[FeatureSet], dataset: DeamDataset, song_ids: np.ndarray,
                        ceilings: pd.DataFrame, n_boot: int, seed: int) -> FeatureAxisResult:
    """Compare the feature sets on one index matrix of the test songs. ``ceilings``:
    analysis.compute.ceilings.ceiling_cells of the same test songs."""
    targets = empirical_targets(dataset.songs, song_ids)
    indices = resample_indices(song_ids.size, n_boot, seed) if n_boot > 0 else None
    result = compute_tables(combined_rows(sets), targets, indices)
    return FeatureAxisResult(sets, int(song_ids.size), n_boot,
                             correlation_table(result.cells, ceilings),
                             paired_comparisons(result, sets))


# --- one sweep with a feature axis (--features A,B / --feature-column c1,c2) -------------

def report_feature_sets(data: ReportData) -> list[FeatureSet]:
    """The feature sets of a report's own sweep, each with its table rows; [] for a sweep
    with fewer than two."""
    predictions, config = data.sweep.predictions, data.sweep.config or {}
    labels = sweep_feature_sets(predictions, config)
    if len(labels) < 2:
        return []
    sources = {f["label"]: f for f in config.get("feature_sets") or []}
    sets = []
    for label in labels:
        own = predictions[predictions[FEATURE_SET_COLUMN] == label]
        rows = build_rows(reference_cell(own), data.song_ids, EVAL_SPLIT,
                          seeds_sd_ddof=data.settings.seeds_sd_ddof)
        item = sources.get(label, {})
        source = (f"{item.get('features') or 'bundled openSMILE'}"
                  f"{' / ' + item['feature_column'] if item.get('feature_column') else ''}")
        sets.append(FeatureSet(label, data.sweep.sweep_dir, config, rows, source))
    return sets


def feature_axis_of_report(data: ReportData) -> FeatureAxisResult | None:
    """The feature-set comparison of a report's own sweep; None without a feature axis."""
    sets = report_feature_sets(data)
    if not sets:
        return None
    return feature_axis_result(sets, data.dataset, data.song_ids, data.ceilings,
                               data.settings.n_boot, data.settings.seed)
