"""A fallback print of the paper's Table 2 and Table 3 straight from the trial files.

The full report is analysis.report's job. This exists so that a sweep still ends with its
headline numbers when the analysis is not installed or fails on some corner: metric mean
+- SD over seeds per method and dimension, with the seeds ensemble as one value (it is
one prediction: the mean and SD of the seeds' means).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mer_uq.methods import PAPER_METHODS
from mer_uq.metrics import pearson_r, r2_score, spearman_rho
from mer_uq.prediction import combine_seeds
from mer_uq.schema import DIMENSIONS, PRED_MU, PRED_SIGMA, TARGET_MEAN, TARGET_SD

METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "R2": r2_score, "Pearson": pearson_r, "Spearman": spearman_rho,
}  # fmt: skip
SEEDS_ENSEMBLE = "seeds"


def read_trial_predictions(trials_dir: Path) -> pd.DataFrame:
    files = sorted(p for p in Path(trials_dir).glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"no trial files in {trials_dir}")
    return pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)


def _cell(values: list[float]) -> str:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return "n/a"
    if len(finite) == 1:
        return f"{finite[0]:.3f}"
    return f"{np.mean(finite):.3f} ± {np.std(finite, ddof=1):.3f}"


def _in_paper_order(methods: np.ndarray) -> list[str]:
    """The paper's five first, in Table 1's order, then any others alphabetically."""
    names = [str(m) for m in methods]
    paper = [m for m in PAPER_METHODS if m in names]
    return paper + sorted(set(names) - set(paper))


def _per_seed_predictions(method_rows: pd.DataFrame, method: str) -> list[pd.DataFrame]:
    """One frame per predictor. The seeds method is ONE predictor, the ensemble of all its
    seeds (mean and SD of their means); every other method has one per seed."""
    if method == SEEDS_ENSEMBLE:
        return [combine_seeds(method_rows, SEEDS_ENSEMBLE)]
    return [group for _, group in method_rows.groupby("seed")]


def paper_tables(predictions: pd.DataFrame, songs: pd.DataFrame, split: str = "test"
                 ) -> dict[str, pd.DataFrame]:
    """{'Table 2': ..., 'Table 3': ...}: rows = methods, columns = '<dimension> <metric>'."""
    rows = predictions[predictions["split"] == split]
    targets = songs.set_index("song_id")
    tables: dict[str, pd.DataFrame] = {}
    for title, predicted, target in (("Table 2 (mean)", PRED_MU, TARGET_MEAN),
                                     ("Table 3 (SD)", PRED_SIGMA, TARGET_SD)):
        table: dict[str, dict[str, str]] = {}
        for method in _in_paper_order(rows["method"].unique()):
            method_rows = rows[rows["method"] == method]
            predictors = _per_seed_predictions(method_rows, method)
            cells: dict[str, str] = {}
            for d in DIMENSIONS:
                if predictors[0][predicted[d]].isna().all():
                    continue  # e.g. one seed of the seeds method has no SD of its own
                for name, metric in METRICS.items():
                    scores = [
                        metric(targets.loc[p["song_id"], target[d]].to_numpy(),
                               p[predicted[d]].to_numpy(dtype=np.float64))
                        for p in predictors
                    ]
                    cells[f"{d} {name}"] = _cell(scores)
            if cells:
                table[method] = cells
        tables[title] = pd.DataFrame.from_dict(table, orient="index")
    return tables


def print_paper_tables(trials_dir: Path, songs: pd.DataFrame) -> None:
    tables = paper_tables(read_trial_predictions(trials_dir), songs)
    for title, table in tables.items():
        print(f"\n{title}, test split: metric mean ± SD over seeds")
        print(table.to_string())
