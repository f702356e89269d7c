"""Paired comparisons between table rows: is method A really better than B here?

Two complementary tests, both paired:

* a paired bootstrap over test songs: the metric difference A - B on the same resampled
  songs (the draws kept by analysis.compute.table_cells), which captures which songs were tested;
* a Wilcoxon signed-rank test over matched seeds, where both rows are per-seed, which
  captures training randomness.

Which pairs: every method row against every baseline row (does it beat a trivial
predictor?), every row of Table 2 against the random-seeds ensemble (the paper's
reference), and all pairs of per-seed rows within a table (method vs method). A
conformally calibrated row is compared with the baselines and with the row it calibrates
(its SD correlations equal that row's; its R² does not), not with every other method.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from analysis.compute.bootstrap import paired_bootstrap, paired_seed_test
from analysis.compute.conformal_rows import original_key
from analysis.compute.rows import BASELINE, CONFORMAL, SEEDS_ENSEMBLE_KEY
from analysis.compute.table_cells import TableResult
from mer_uq import schema
from mer_uq.scores import POINT_SCORES


def comparison_pairs(cells: pd.DataFrame, table: str) -> list[tuple[str, str]]:
    """(row A, row B) pairs compared in one table, each once, A never a baseline when B
    is one (so a positive difference means "the method beats the baseline")."""
    rows = cells[cells["table"] == table].drop_duplicates("row_key")
    keys = rows["row_key"].tolist()
    baselines = rows.loc[rows["group"] == BASELINE, "row_key"].tolist()
    methods = [k for k in keys if k not in baselines]
    calibrated = rows.loc[rows["group"] == CONFORMAL, "row_key"].tolist()
    per_seed = rows.loc[~rows["single"].astype(bool) & (rows["group"] != CONFORMAL),
                        "row_key"].tolist()
    pairs: list[tuple[str, str]] = [(m, b) for m in methods for b in baselines]
    if table == "table2" and SEEDS_ENSEMBLE_KEY in methods:
        pairs += [(m, SEEDS_ENSEMBLE_KEY) for m in methods
                  if m != SEEDS_ENSEMBLE_KEY and m not in calibrated]
    pairs += list(combinations(per_seed, 2))
    pairs += [(c, original_key(c)) for c in calibrated if original_key(c) in keys]
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
    cells = result.cells
    point = {key: (float(v), bool(single)) for key, v, single in zip(
        zip(cells["table"], cells["row_key"], cells["dimension"], cells["metric"], strict=True),
        cells["value"], cells["single"], strict=True)}
    seeds: dict[tuple[str, str, str, str], dict[int, float]] = {}
    for line in result.per_seed.itertuples(index=False):
        seeds.setdefault((line.table, line.row_key, line.dimension, line.metric), {})[
            int(line.seed)] = float(line.value)
    lines = []
    for table in cells["table"].unique():
        for a, b in comparison_pairs(cells, table):
            for dim in schema.DIMENSIONS:
                for metric in POINT_SCORES:
                    key_a, key_b = (table, a, dim, metric), (table, b, dim, metric)
                    (value_a, single_a), (value_b, single_b) = point[key_a], point[key_b]
                    line = {"table": table, "row_a": a, "row_b": b, "dimension": dim,
                            "metric": metric, "difference": value_a - value_b,
                            "ci_low": np.nan, "ci_high": np.nan, "p_bootstrap": np.nan,
                            "n_boot": 0, "n_seed_pairs": 0, "p_seeds": np.nan}
                    if key_a in result.boot and key_b in result.boot:
                        paired = paired_bootstrap(value_a, value_b, result.boot[key_a],
                                                  result.boot[key_b])
                        line.update(ci_low=paired.ci_low, ci_high=paired.ci_high,
                                    p_bootstrap=paired.p_value, n_boot=paired.n_boot)
                    if not (single_a or single_b):
                        n, p = paired_seed_test(seeds[key_a], seeds[key_b])
                        line.update(n_seed_pairs=n, p_seeds=p)
                    lines.append(line)
    return pd.DataFrame(lines)
