"""The report's short reading of the results, written from the numbers.

Nothing here is a canned claim: every sentence is built from the cells, the paired
comparisons, the ceilings and the scores of THIS run, and says "not distinguishable" when
a paired bootstrap interval contains zero. A verdict uses the paired bootstrap over test
songs (95 % interval of A - B excluding 0), the same test the comparison table shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.compute.baselines import BASELINE_CONSTANT_SD, BASELINE_RIDGE, BASELINE_SD_FROM_MEAN
from analysis.compute.rows import BASELINE
from analysis.present.table_layout import POINT_SCORE_LABELS, fmt, fmt_interval
from analysis.read.paper_tables import FAR_BELOW_TEXT, PaperTables, is_far_below
from analysis.read.sweep_results import TrialProblem
from mer_uq import schema
from mer_uq.methods import METHODS, Uncertainty
from mer_uq.scores import NLL, PEARSON, R2, SD, coverage_name

BETTER, WORSE, TIED, UNTESTED = "better", "worse", "not distinguishable", "untested"


def verdict(comparisons: pd.DataFrame, table: str, row_a: str, row_b: str, dim: str,
            metric: str) -> str:
    """Whether row A beats row B on one metric (paired bootstrap, 95 %)."""
    sel = comparisons[(comparisons["table"] == table) & (comparisons["dimension"] == dim)
                      & (comparisons["metric"] == metric)]
    hit = sel[(sel["row_a"] == row_a) & (sel["row_b"] == row_b)]
    sign = 1.0
    if hit.empty:
        hit = sel[(sel["row_a"] == row_b) & (sel["row_b"] == row_a)]
        sign = -1.0
    if hit.empty:
        return UNTESTED
    low, high = sorted((sign * float(hit["ci_low"].iloc[0]), sign * float(hit["ci_high"].iloc[0])))
    if not (np.isfinite(low) and np.isfinite(high)):
        return UNTESTED
    return BETTER if low > 0 else WORSE if high < 0 else TIED


def _labels(cells: pd.DataFrame) -> dict[str, str]:
    return dict(zip(cells["row_key"], cells["row_label"], strict=False))


MAX_NAMED = 4  # longer lists are summarised by their size, so the reading stays short


def _names(names: list[str]) -> str:
    """A list of row labels, or its size when it is long."""
    if not names:
        return "none"
    if len(names) <= MAX_NAMED:
        return ", ".join(names)
    return f"{len(names)} rows"


def _share(names: list[str], total: int) -> str:
    """'k of n' rows, with their names when few."""
    named = f" ({', '.join(names)})" if 0 < len(names) <= MAX_NAMED else ""
    return f"{len(names)} of {total}{named}"


def _grouped(verdicts: dict[str, str], labels: dict[str, str]) -> str:
    """Verdicts grouped by kind; the most common kind is summarised as "the other k"."""
    by_kind = {kind: [labels.get(k, k) for k, v in verdicts.items() if v == kind]
               for kind in (BETTER, TIED, WORSE)}
    by_kind = {kind: names for kind, names in by_kind.items() if names}
    if not by_kind:
        return "no paired comparison available"
    if len(by_kind) == 1:
        kind, names = next(iter(by_kind.items()))
        return f"{kind} for all {len(names)} rows"
    largest = max(by_kind, key=lambda kind: len(by_kind[kind]))
    parts = [f"{kind}: {', '.join(names)}" for kind, names in by_kind.items()
             if kind != largest]
    parts.append(f"{largest}: the other {len(by_kind[largest])}")
    return "; ".join(parts)


def _cell(cells: pd.DataFrame, table: str, key: str, dim: str, metric: str) -> pd.Series | None:
    sel = cells[(cells["table"] == table) & (cells["row_key"] == key)
                & (cells["dimension"] == dim) & (cells["metric"] == metric)]
    return None if sel.empty else sel.iloc[0]


def ceiling_band(cells: pd.DataFrame, ceilings: pd.DataFrame, table: str, target: str,
                 dim: str) -> str:
    """Where each row's Pearson r sits against the target's correlation ceiling and its
    bootstrap noise band; a row above the band beats what the target's reliability allows
    (chance, or a leak of the target into the inputs)."""
    ceil = ceilings[(ceilings["target"] == target) & (ceilings["dimension"] == dim)
                    & (ceilings["metric"] == PEARSON)]
    sub = cells[(cells["table"] == table) & (cells["metric"] == PEARSON)
                & (cells["dimension"] == dim) & (cells["group"] != BASELINE)]
    if ceil.empty or sub.empty:
        return ""
    c = ceil.iloc[0]
    labels = _labels(cells)
    values = list(zip(sub["row_key"], sub["value"], strict=True))
    above = [labels[k] for k, v in values if np.isfinite(v) and v > c["ceiling_ci_high"]]
    within = [labels[k] for k, v in values
              if np.isfinite(v) and c["ceiling_ci_low"] <= v <= c["ceiling_ci_high"]]
    text = (f"The correlation ceiling is {fmt(c['ceiling'])} (noise band "
            f"{fmt_interval(c['ceiling_ci_low'], c['ceiling_ci_high'])}); rows above the band "
            "(more than the target's reliability allows: chance or a leak): "
            + _names(above))
    if within:
        text += f"; rows inside the band: {_names(within)}"
    return text + "."


def mean_table_findings(cells: pd.DataFrame, comparisons: pd.DataFrame, ceilings: pd.DataFrame
                    ) -> list[str]:
    """Table 2: the best row, the ridge probe, the ceiling, and who beats the probe."""
    out = []
    labels = _labels(cells)
    part = cells[(cells["table"] == "table2") & (cells["metric"] == R2)]
    methods = part.loc[part["group"] != BASELINE, "row_key"].unique()
    for dim in schema.DIMENSIONS:
        sub = part[(part["dimension"] == dim) & (part["group"] != BASELINE)]
        if sub.empty:
            continue
        best = sub.loc[sub["value"].idxmax()]
        probe = _cell(cells, "table2", BASELINE_RIDGE, dim, R2)
        text = (f"Mean, {dim}: the highest R² is {best['row_label']} ({fmt(best['value'])}, "
                f"bootstrap {fmt_interval(best['ci_low'], best['ci_high']) or 'n/a'}); "
                f"the reliability ceiling of R² is {fmt(best['ceiling'])}")
        if probe is not None:
            text += f"; the mean-only ridge probe reaches {fmt(probe['value'])}"
            verdicts = {m: verdict(comparisons, "table2", m, BASELINE_RIDGE, dim, R2)
                        for m in methods}
            text += f". Against the ridge probe (R²), {_grouped(verdicts, labels)}"
        out.append(f"{text}. {ceiling_band(cells, ceilings, 'table2', 'mean', dim)}".strip())
    return out


def sd_table_findings(cells: pd.DataFrame, comparisons: pd.DataFrame, ceilings: pd.DataFrame
                  ) -> list[str]:
    """Table 3: correlations vs zero, vs the ceiling's band, and vs the baselines."""
    out = []
    labels = _labels(cells)
    part = cells[(cells["table"] == "table3") & (cells["metric"] == PEARSON)]
    methods = part.loc[part["group"] != BASELINE, "row_key"].unique()
    for dim in schema.DIMENSIONS:
        ceil = ceilings[(ceilings["target"] == SD) & (ceilings["dimension"] == dim)
                        & (ceilings["metric"] == PEARSON)]
        sub = part[(part["dimension"] == dim) & (part["group"] != BASELINE)]
        if sub.empty or ceil.empty:
            continue
        positive = [labels[k] for k, lo in zip(sub["row_key"], sub["ci_low"], strict=True)
                    if np.isfinite(lo) and lo > 0]
        text = (f"SD, {dim}: Pearson r of the predicted with the empirical SD ranges from "
                f"{fmt(sub['value'].min())} to {fmt(sub['value'].max())}. ")
        text += (f"Rows whose bootstrap interval of r lies above 0: {_share(positive, len(sub))}"
                 + f"; by chance alone about {0.025 * len(sub):.1f} would (one-sided 2.5 % "
                 "each, not corrected for multiple rows). ")
        text += ceiling_band(cells, ceilings, "table3", SD, dim)
        out.append(text)
        for baseline, metric in ((BASELINE_CONSTANT_SD, R2), (BASELINE_SD_FROM_MEAN, PEARSON),
                                 (BASELINE_RIDGE, PEARSON)):
            if _cell(cells, "table3", baseline, dim, metric) is None:
                continue
            verdicts = {m: verdict(comparisons, "table3", m, baseline, dim, metric)
                        for m in methods}
            name = POINT_SCORE_LABELS[metric]
            out.append(f"SD, {dim}, against {labels.get(baseline, baseline)} ({name}): "
                       f"{_grouped(verdicts, labels)}.")
    return out


def spread_expectations(cells: pd.DataFrame) -> list[str]:
    """Which of the rows' methods are not expected to follow the raters' SD, and why
    (mer_uq.methods.MethodSpec.sees_rater_spread): a low Table 3 r is no failure there."""
    present = [m for m in dict.fromkeys(cells["row_key"]) if m in METHODS]
    labels = _labels(cells)
    model = [labels[m] for m in present
             if METHODS[m].uncertainty in (Uncertainty.SEED_ENSEMBLE, Uncertainty.MC_DROPOUT)]
    means = [labels[m] for m in present
             if not METHODS[m].sees_rater_spread and labels[m] not in model]
    out = []
    if model:
        out.append(f"Not expected to follow the raters' SD: {', '.join(model)}: their SD is "
                   "the spread of the models (model uncertainty), not of the raters.")
    if means:
        out.append(f"Not expected to follow the raters' SD: {', '.join(means)}: fitted to the "
                   "song means, their SD estimates the error of the mean, never the raters' "
                   "spread.")
    return out


def score_findings(scores: pd.DataFrame) -> list[str]:
    """Proper scores on the held-out ratings: who beats the constant-SD reference, and
    how the 95 % interval covers."""
    out = []
    if scores.empty:
        return out
    for dim in schema.DIMENSIONS:
        nll = scores[(scores["dimension"] == dim) & (scores["score"] == NLL)].dropna(
            subset=["value"])
        if nll.empty:
            continue
        best = nll.loc[nll["value"].idxmin()]
        text = (f"Ratings, {dim}: the lowest NLL of the test ratings (each row under its own "
                f"predicted distribution) is "
                f"{best['row_label']} ({fmt(best['value'])})")
        ref = nll[nll["row_key"] == BASELINE_CONSTANT_SD]
        if not ref.empty:
            ref_value = float(ref["value"].iloc[0])
            beat = nll[(nll["group"] != BASELINE) & (nll["value"] < ref_value)]["row_label"]
            n_methods = int((nll["group"] != BASELINE).sum())
            text += (f"; the constant-SD baseline scores {fmt(ref_value)}, and "
                     f"{_share(list(beat), n_methods)} method rows score lower")
        cov = scores[(scores["dimension"] == dim) & (scores["score"] == coverage_name(0.95))]
        over = cov[cov["value"] < 0.90]["row_label"].tolist()
        under = cov[cov["value"] > 0.99]["row_label"].tolist()
        text += (f". Nominal 95 % intervals cover under 90 % of the ratings (overconfident) "
                 f"for {_share(over, len(cov))} rows; over 99 % (underconfident) for "
                 f"{_share(under, len(cov))}.")
        out.append(text)
    return out


def variance_findings(parts: pd.DataFrame) -> list[str]:
    """How much of each row's predicted variance is model (epistemic) uncertainty: for a
    deep ensemble the disagreement between seeds, for the last-layer Laplace the output
    layer's posterior; the seeds ensemble, MC dropout and SWAG are all epistemic."""
    if parts.empty:
        return []
    shares = parts.groupby("row_label", sort=False)["epistemic_share"].mean()
    listed = ", ".join(f"{label} {100 * share:.1f} %" for label, share in shares.items())
    return [f"Epistemic share of the predicted variance (mean over dimensions): {listed}; "
            "the rest is aleatoric (a deep ensemble's members' own sigma², the Laplace "
            "noise variance)."]


def paper_findings(cells: pd.DataFrame, paper: PaperTables | None) -> list[str]:
    """Per table: how many published cells our run agrees with, and the range of the
    differences (every published cell is compared: analysis.read.paper_tables.compare_cell).
    Nothing without ``paper``: data that is not DEAM is never compared with it."""
    if paper is None:
        return []
    out = []
    for table in ("table2", "table3"):
        part = cells[(cells["table"] == table)
                     & cells["paper_text"].map(lambda t: isinstance(t, str))]
        n_published = int((paper.cells["table"] == table).sum())
        if part.empty:
            out.append(f"Table {table.removeprefix('table')}: none of the paper's "
                       f"{n_published} cells has a matching row in this run.")
            continue
        far_below = part["paper_text"].map(is_far_below).astype(bool)
        numeric, signs = part[~far_below], part[far_below]
        text = (f"Table {table.removeprefix('table')}: the paper's value lies inside our 95 % "
                f"interval in {int(numeric['paper_in_ci'].eq(True).sum())} of "
                f"{len(numeric)} numeric cells (ours minus paper from "
                f"{fmt(numeric['difference'].min())} to {fmt(numeric['difference'].max())})")
        if len(signs):
            text += (f"; ours is below zero in {int(signs['ours_below_zero'].eq(True).sum())} "
                     f"of the {len(signs)} cells the paper prints as {FAR_BELOW_TEXT}")
        out.append(text + (f"; {n_published - len(part)} published cells have no row here."
                           if n_published > len(part) else "."))
    return out


def problem_findings(problems: list[TrialProblem]) -> list[str]:
    if not problems:
        return ["Every trial file promised by sweep.json was read."]
    return [f"{len(problems)} problem(s) while reading the sweep (listed under 'Sweep "
            "problems'); every number above uses only the trials that were read."]


def all_findings(cells: pd.DataFrame, comparisons: pd.DataFrame, ceilings: pd.DataFrame,
                 scores: pd.DataFrame, parts: pd.DataFrame, paper: PaperTables | None,
                 problems: list[TrialProblem]) -> list[str]:
    """The whole reading, one paragraph per item."""
    return [*problem_findings(problems), *mean_table_findings(cells, comparisons, ceilings),
            *sd_table_findings(cells, comparisons, ceilings), *spread_expectations(cells),
            *score_findings(scores),
            *variance_findings(parts), *paper_findings(cells, paper)]
