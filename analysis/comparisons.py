"""Paired comparisons between table rows: is method A really better than B here?

Two complementary tests, both paired:

* a paired bootstrap over test songs: the metric difference A - B on the same resampled
  songs (the draws kept by analysis.tables), which captures which songs were tested;
* a Wilcoxon signed-rank test over matched seeds, where both rows are per-seed, which
  captures training randomness.

Which pairs: every method row against every baseline row (does it beat a trivial
predictor?), every row of Table 2 against the random-seeds ensemble (the paper's
reference), and all pairs of per-seed rows within a table (method vs method).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from analysis.bootstrap import paired_bootstrap, paired_seed_test
from analysis.rows import BASELINE, SEEDS_ENSEMBLE_KEY
from analysis.tables import METRICS, TableResult
from mer_uq import schema


def comparison_pairs(cells: pd.DataFrame, table: str) -> list[tuple[str, str]]:
    """(row A, row B) pairs compared in one table, each once, A never a baseline when B
    is one (so a positive difference means "the method beats the baseline")."""
    rows = cells[cells["table"] == table].drop_duplicates("row_key")
    keys = rows["row_key"].tolist()
    baselines = rows.loc[rows["group"] == BASELINE, "row_key"].tolist()
    methods = [k for k in keys if k not in baselines]
    per_seed = rows.loc[~rows["single"].astype(bool), "row_key"].tolist()
    pairs: list[tuple[str, str]] = [(m, b) for m in methods for b in baselines]
    if table == "table2" and SEEDS_ENSEMBLE_KEY in methods:
        pairs += [(m, SEEDS_ENSEMBLE_KEY) for m in methods if m != SEEDS_ENSEMBLE_KEY]
    pairs += list(combinations(per_seed, 2))
    seen: set[frozenset[str]] = set()
    unique = []
    for a, b in pairs:
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            unique.append((a, b))
    return unique


def compare_rows(result: TableResult) -> pd.DataFrame:
    """One line per (table, A, B, dimension, metric): A - B, its paired bootstrap interval
    and p-value, and the seed-paired Wilcoxon p-value where both rows are per-seed."""
    cells = result.cells.set_index(["table", "row_key", "dimension", "metric"])
    per_seed = result.per_seed
    lines = []
    for table in cells.index.get_level_values("table").unique():
        for a, b in comparison_pairs(result.cells, table):
            for dim in schema.DIMENSIONS:
                for metric in METRICS:
                    cell_a = cells.loc[(table, a, dim, metric)]
                    cell_b = cells.loc[(table, b, dim, metric)]
                    boot_a = result.boot.get((table, a, dim, metric))
                    boot_b = result.boot.get((table, b, dim, metric))
                    line = {"table": table, "row_a": a, "row_b": b, "dimension": dim,
                            "metric": metric,
                            "difference": float(cell_a["value"] - cell_b["value"]),
                            "ci_low": np.nan, "ci_high": np.nan, "p_bootstrap": np.nan,
                            "n_boot": 0, "n_seed_pairs": 0, "p_seeds": np.nan}
                    if boot_a is not None and boot_b is not None:
                        paired = paired_bootstrap(float(cell_a["value"]),
                                                  float(cell_b["value"]), boot_a, boot_b)
                        line.update(ci_low=paired.ci_low, ci_high=paired.ci_high,
                                    p_bootstrap=paired.p_value, n_boot=paired.n_boot)
                    if not (cell_a["single"] or cell_b["single"]):
                        sel = ((per_seed["table"] == table) & (per_seed["dimension"] == dim)
                               & (per_seed["metric"] == metric))
                        seeds_a = per_seed[sel & (per_seed["row_key"] == a)]
                        seeds_b = per_seed[sel & (per_seed["row_key"] == b)]
                        n, p = paired_seed_test(dict(zip(seeds_a["seed"], seeds_a["value"],
                                                         strict=True)),
                                                dict(zip(seeds_b["seed"], seeds_b["value"],
                                                         strict=True)))
                        line.update(n_seed_pairs=n, p_seeds=p)
                    lines.append(line)
    return pd.DataFrame(lines)
