"""The report as a document: a list of blocks in reading order (analysis.present.render
turns it into report.md and report.html).

Every sentence and table here is made from the computed numbers (analysis.compute.
pipeline.ReportData); nothing is computed anew. The sections of a sweep's optional axes
(data axes, feature sets, readout audit) have their own modules beside this one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from analysis.compute.bootstrap import cells_resampling_note, interval_errors, resampling_note
from analysis.compute.conformal_rows import original_key
from analysis.compute.pipeline import ReportData
from analysis.compute.table_cells import TABLE_TITLES
from analysis.present.feature_axis_section import feature_set_caption
from analysis.present.figures import PAPER_FIGURE_SEED, figure_seed
from analysis.present.findings import all_findings, paper_findings
from analysis.present.render import Block, Bullets, Code, Heading, Image, Paragraph, Table
from analysis.present.report_paths import table_path
from analysis.present.table_layout import (
    DIGITS,
    fmt,
    fmt_bounds,
    fmt_cell,
    fmt_estimate,
    paper_comparison,
    paper_layout,
)
from analysis.read.coverage import first_screen_lines
from analysis.read.paper_tables import FAR_BELOW_TEXT, not_compared_line
from analysis.read.sweep_results import trial_overview
from mer_uq import schema
from mer_uq.scores import PEARSON, R2, coverage_name
from mer_uq.sources import DEAM, SYNTHETIC, data_source, describe_data

FIGURE_CAPTIONS = {
    "fig2_mean_distribution": "Fig. 2 analogue: per-song mean rating (normalised), valence "
                              "vs arousal, by split, with marginal densities.",
    "fig3_sd_distribution": "Fig. 3 analogue: per-song inter-rater SD (normalised), by split.",
    "fig4_mean_predicted_vs_empirical": "Fig. 4 analogue: predicted vs empirical mean on the "
                                        "test songs; one seed (grey, {seed}) and the ensemble "
                                        "(red).",
    "fig5_sd_predicted_vs_empirical": "Fig. 5 analogue: predicted vs empirical SD on the test "
                                      "songs; one seed (grey, {seed}) and the ensemble (red).",
    "calibration_curves": "Calibration: share of held-out individual ratings inside each "
                          "central interval of the predicted Gaussian, vs its nominal level.",
}


def _caption(name: str, data: ReportData) -> str:
    """A figure's caption; Fig. 4/5 say which seed their single-model panels show."""
    seed = figure_seed(data.rows)
    which = ("n/a" if seed is None else f"seed {seed}, as in the paper"
             if seed == PAPER_FIGURE_SEED else
             f"seed {seed}: the lowest, the sweep has no seed {PAPER_FIGURE_SEED} (the paper's)")
    return FIGURE_CAPTIONS.get(name, name).replace("{seed}", which)


def json_default(value: Any) -> Any:
    """json.dumps' fallback for numpy numbers and arrays (anything else as text)."""
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _score_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows x (dimension, score), 'mean ± SD' over seeds."""
    if scores.empty:
        return pd.DataFrame()
    text = [fmt_cell(v, sd, single) for v, sd, single in
            zip(scores["value"], scores["sd_over_seeds"], scores["single"], strict=True)]
    frame = scores.assign(text=text, column=scores["dimension"] + " " + scores["score"])
    wide = frame.pivot_table(index="row_label", columns="column", values="text",
                             aggfunc="first", sort=False)
    order = [f"{d} {s}" for d in schema.DIMENSIONS for s in scores["score"].unique()]
    return wide.reindex(columns=order).reset_index().rename(columns={"row_label": "Method"})


CONFORMAL_TEXT = (
    "Each '+ conformal' row is the row above it with sigma scaled by one factor c per seed "
    "and dimension: the split-conformal quantile of |rating - mu| / sigma over the "
    "validation songs' individual ratings at the 80 % level, divided by the Gaussian "
    "z of that level (mer_uq.conformal). Scaling sigma by one factor leaves the SD's "
    "Pearson and Spearman correlations (Table 3) unchanged; it changes the SD's R², the "
    "NLL, the CRPS and the coverages: both rows are shown. The 80 % interval covers at its "
    "nominal rate by construction on exchangeable songs; the 50 % and 95 % intervals only "
    "as far as the normalised residuals are Gaussian in shape.")


def _conformal_summary(data: ReportData) -> pd.DataFrame:
    """Per calibrated row and dimension: the factor over seeds and the 80 % coverage of
    the test ratings before (the row it calibrates) and after."""
    scores = data.scores[data.scores["score"] == coverage_name(0.8)].set_index(
        ["row_key", "dimension"])["value"]
    lines = []
    for (key, dim), part in data.conformal_factors.groupby(["row_key", "dimension"],
                                                           sort=False):
        factor = part["factor"]
        lines.append({
            "row": part["row_label"].iloc[0], "dimension": dim,
            "factor c": fmt_estimate(factor.mean(), factor.min(), factor.max()),
            "coverage 80 % before": fmt(scores.get((original_key(key), dim), np.nan)),
            "coverage 80 % after": fmt(scores.get((key, dim), np.nan)),
        })
    return pd.DataFrame(lines)


def _key_comparisons(data: ReportData) -> pd.DataFrame:
    """The comparisons the reading relies on: each method against each baseline (and
    Table 2 rows against the random-seeds ensemble); the full set is in the CSV."""
    comp = data.comparisons
    if comp.empty:
        return comp
    keep = comp[((comp["table"] == "table2") & (comp["metric"] == R2))
                | ((comp["table"] == "table3") & comp["metric"].isin([PEARSON, R2]))]
    keep = keep[keep["row_b"].str.startswith("baseline_") | (keep["row_b"] == "seeds")]
    labels = dict(zip(data.cells["row_key"], data.cells["row_label"], strict=False))
    return pd.DataFrame({
        "table": keep["table"], "A": keep["row_a"].map(labels), "B": keep["row_b"].map(labels),
        "dimension": keep["dimension"], "metric": keep["metric"],
        "A - B": keep["difference"].map(fmt),
        "95% paired bootstrap": [fmt_bounds(lo, hi) for lo, hi in
                                 zip(keep["ci_low"], keep["ci_high"], strict=True)],
        "p (bootstrap)": keep["p_bootstrap"].map(lambda p: fmt(p, 3)),
    })


# The options that set each reliability's resamples and half splits (analysis.report):
# the test songs' (the ceilings) and the data summary's over all songs.
CEILING_OPTIONS = ("--reliability-boot", "--reliability-repeats")
SUMMARY_OPTIONS = ("--summary-reliability-boot", "--summary-reliability-repeats")


def _reliability_note(what: str, estimates: list[dict[str, Any]],
                      options: tuple[str, str]) -> str:
    """How many resamples and half splits the reliability used, under which options
    (``options``: resamples, repeats), and whether the resamples could matter."""
    widths = np.array([e["ci_high"] - e["ci_low"] for e in estimates], dtype=np.float64)
    errors = [float(e.get("ci_error", np.nan)) for e in estimates]
    boot_option, repeats_option = options
    return (resampling_note(what, boot_option, int(estimates[0]["n_boot"]),
                            int(estimates[0]["n_songs"]), widths, 10.0**-DIGITS,
                            max(errors) if all(np.isfinite(errors)) else np.nan)
            + f" The split-half r averages {int(estimates[0]['n_repeats'])} random half "
              f"splits per song ({repeats_option}).")


def _data_audit_blocks(summary: dict[str, Any]) -> list[Block]:
    """The data audit: songs, split, the valence/arousal swap check, reliability."""
    swap = summary.get("swap", {})
    correlations = swap.get("correlations", {})
    lines = [f"Songs: {summary.get('n_songs')}, ratings: {summary.get('n_ratings')}, distinct "
             f"raters: {summary.get('raters', {}).get('distinct_raters')}.",
             "Split (" + str(summary.get("split_source")) + "): "
             + ", ".join(f"{k} {v}" for k, v in summary.get("splits", {}).items()) + ".",
             f"Valence/arousal swap audit ({swap.get('method')}): detected="
             f"{swap.get('detected')}, subset={swap.get('subset')}, corrected="
             f"{swap.get('corrected')}."]
    for subset, corr in correlations.items():
        cells = ", ".join(f"{k} = {v:.3f}" for k, v in corr.items())
        lines.append(f"Swap evidence, {subset}: {cells or 'no dynamic annotations'}.")
    rel = summary.get("reliability", {})
    estimates = [e for stats in rel.values() for e in stats.values()]
    if estimates:
        lines.append(_reliability_note("Reliability over all songs", estimates,
                                       SUMMARY_OPTIONS))
    rel_lines = [
        {"dimension": dim, "statistic": stat, "reliability": fmt(e["reliability"]),
         "95% CI": fmt_bounds(e["ci_low"], e["ci_high"]),
         "correlation ceiling": fmt(e["ceiling"]), "songs": e["n_songs"]}
        for dim, stats in rel.items() for stat, e in stats.items()]
    blocks: list[Block] = [Bullets(tuple(lines))]
    if rel_lines:
        blocks.append(Table(pd.DataFrame(rel_lines),
                            "Split-half reliability over ALL songs (mer_uq.data.summary)"))
    return blocks


MAX_FINDINGS = 8
# Tables the document cites by file (analysis.write writes them under these stems).
PROBLEMS_STEM, CONFORMAL_FACTORS_STEM, COMPARISONS_STEM = (
    "problems", "conformal_factors", "comparisons")


def _seed_range(seeds: list[int]) -> str:
    """[0, 1, ..., 14] -> '0-14 (15)'; a gappy list is printed whole."""
    seeds = sorted(int(s) for s in seeds)
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]} ({len(seeds)})"
    return ", ".join(str(s) for s in seeds)


def _config_table(config: dict[str, Any] | None) -> pd.DataFrame:
    """sweep.json as one compact key/value table (nested dicts as k=v lists)."""
    lines = []
    for key, value in (config or {}).items():
        if key == "seeds" and isinstance(value, list):
            text = _seed_range(value)
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value) if len(value) <= 8 else f"{len(value)} items"
        else:
            text = "bundled default" if value is None else str(value)
        lines.append({"setting": key, "value": text})
    return pd.DataFrame(lines, columns=["setting", "value"])


def _cells_resampling_note(data: ReportData) -> str:
    return cells_resampling_note(data.settings.n_boot, data.song_ids.size,
                                 interval_errors(data.tables.boot.values()), 10.0**-DIGITS)


def _what_ran(data: ReportData) -> str:
    """The opening paragraph: data, features, split, methods, seeds, losses, estimators."""
    config = data.sweep.config or {}
    predictions = data.sweep.predictions
    mc_ddof = (sorted(predictions["hp_mc_sd_ddof"].dropna().unique().astype(int))
               if "hp_mc_sd_ddof" in predictions.columns else [])
    mc_text = ({1: "n - 1 (eq. 7)", 0: "population (n)"}.get(mc_ddof[0], str(mc_ddof))
               if len(mc_ddof) == 1 else "population (n; trials predate the choice)")
    seeds_text = "n - 1 (eq. 5)" if data.settings.seeds_sd_ddof == 1 else "population (n)"
    seeds = sorted(int(s) for s in predictions["seed"].unique()) if len(predictions) else []
    source = data_source(config)
    features = ("generated with the data" if source == SYNTHETIC else
                f"{config.get('features') or 'bundled openSMILE'}"
                f"{' / ' + str(config['feature_column']) if config.get('feature_column') else ''}")
    split = ((config.get("split_file") or "bundled default") if source == DEAM
             else data.dataset.split_source)
    return (f"{describe_data(config)}, features {features}, split {split}; "
            f"{data.song_ids.size} test songs. Methods: {', '.join(sorted(data.loss_forms))} "
            f"(loss forms under 'Run configuration'); seeds {_seed_range(seeds)}; "
            f"{config.get('mc_passes', '?')} MC-dropout passes. SD estimators: across seeds "
            f"{seeds_text}, over MC passes {mc_text}. {_cells_resampling_note(data)} Generated "
            f"{datetime.now(UTC).isoformat(timespec='seconds')} from "
            f"{len(data.sweep.loaded_files)} trial file(s) in {data.sweep.sweep_dir}.")


def _main_tables_blocks(data: ReportData, figures: dict[str, str], features: str
                       ) -> list[Block]:
    """The first screen: what ran, what is missing, Tables 2 and 3 against the paper, the
    SD figure and the findings."""
    reading = all_findings(data.cells, data.comparisons, data.ceilings, data.scores,
                           data.variance_parts, data.paper, data.problems)
    findings = [*paper_findings(data.cells, data.paper), *reading][:MAX_FINDINGS]
    blocks: list[Block] = [
        Heading(f"mer-uq report: {data.sweep.sweep_dir.name}", 1),
        Paragraph(_what_ran(data)),
    ]
    if data.paper is None:  # not DEAM: the one line saying why no cell meets the paper's
        blocks.append(Paragraph(not_compared_line(data.sweep.config or {})))
    incomplete = first_screen_lines(data.problems)
    if incomplete:  # a method never leaves a table without a line saying so, up front
        blocks += [Paragraph("**Not in the tables as planned** (details under 'Sweep "
                             f"problems' and in {table_path(PROBLEMS_STEM)}):"),
                   Bullets(tuple(incomplete))]
    compared = data.paper is not None
    for table in ("table2", "table3"):
        blocks.append(Table(paper_layout(data.cells, data.ceilings, table, with_paper=compared),
                            f"{TABLE_TITLES[table]}{features}. mean ± SD over seeds (one value: an "
                            "ensemble or a baseline)" + (
                                "; '↳ paper' = the published cell, ✓ = inside our 95 % "
                                f"bootstrap interval ({FAR_BELOW_TEXT}: ours < 0 too)"
                                if compared else "")))
    sd_figure = figures.get("fig5_sd_predicted_vs_empirical")
    if sd_figure is not None:
        blocks.append(Image(sd_figure, _caption("fig5_sd_predicted_vs_empirical", data)))
    return [*blocks, Heading("Findings"), Bullets(tuple(findings)),
            Heading("Details (written automatically from the numbers below)"),
            Bullets(tuple(reading))]


def _run_blocks(data: ReportData) -> list[Block]:
    """What was read and how it ran: the trials, the problems, sweep.json, the loss forms
    and the data audit."""
    sweep = data.sweep
    overview = trial_overview(sweep)
    blocks: list[Block] = [
        Heading("Trials read"),
        Table(overview.assign(val_loss=overview["val_loss"].map(fmt),
                              duration_s=overview["duration_s"].map(lambda v: fmt(v, 1))),
              "val_loss: best validation loss of the trial, mean over its seeds "
              "(from the trial record; its scale depends on the loss)")]
    if data.problems:
        blocks += [Heading("Sweep problems"), Table(problems_frame(data))]
    return [
        *blocks,
        Heading("Run configuration (sweep.json)"),
        Table(_config_table(sweep.config)),
        Code(json.dumps(sweep.config, indent=2, default=json_default)
             if sweep.config else "(no readable sweep.json)"),
        Table(pd.DataFrame([{"method": m, "loss form that ran": f}
                            for m, f in data.loss_forms.items()]),
              "Loss forms, from the method names in the trial files (printed = the "
              "paper's equations as printed; exact = the textbook forms)"),
        Heading("Data audit"), *_data_audit_blocks(data.data_summary)]


def _table_detail_blocks(data: ReportData, features: str) -> list[Block]:
    """Tables 2 and 3 in full: the cells, their intervals, every published cell (DEAM
    data only: the published numbers are DEAM's)."""
    blocks: list[Block] = []
    for table in ("table2", "table3"):
        blocks += [
            Heading(TABLE_TITLES[table] + features),
            Table(paper_layout(data.cells, data.ceilings, table),
                  "mean ± SD over seeds; one value for an ensemble or a baseline; last line: "
                  "reliability ceiling (R²: reliability; r, ρ: sqrt(reliability))"),
            Table(paper_layout(data.cells, data.ceilings, table, with_interval=True),
                  "95% bootstrap interval over test songs of the same cells (ceiling: its "
                  "bootstrap interval)"),
        ]
        if data.paper is not None:
            blocks.append(Table(paper_comparison(data.cells, table),
                                f"Ours vs published. {data.paper.caveat}"))
    if data.paper is None:
        return blocks
    return [*blocks, Paragraph(f"Published numbers: {data.paper.citation} {data.paper.url}. "
                               f"{data.paper.provenance}")]


def _baseline_and_ceiling_blocks(data: ReportData) -> list[Block]:
    """The baselines' fitted settings and the reliability ceilings of the test songs."""
    blocks: list[Block] = []
    if data.baseline_details:
        blocks += [Heading("Baselines"), Table(pd.DataFrame([
            {"dimension": dim, **{k: (fmt(v) if isinstance(v, float) else
                                      ", ".join(fmt(c) for c in v) if isinstance(v, list)
                                      else v) for k, v in d.items()}}
            for dim, d in data.baseline_details.items()]),
            "Ridge penalties chosen on the validation split; SD-from-mean: quadratic fitted "
            "on training songs' empirical (mean, SD), applied to the ridge-predicted mean")]
    return [
        *blocks,
        Heading("Reliability ceilings on the test songs"),
        Table(data.reliability.map(lambda v: fmt(v) if isinstance(v, float) else v),
              "mer_uq.data.reliability.split_half_reliability on the test songs' "
              "per-rater table. " + _reliability_note(
                  "Ceiling intervals", data.reliability.to_dict("records"),
                  CEILING_OPTIONS))]


def _uncertainty_blocks(data: ReportData) -> list[Block]:
    """Proper scores on the individual ratings, the variance split, conformal calibration
    and the key paired comparisons."""
    blocks: list[Block] = [
        Heading("Uncertainty scores on the held-out individual ratings"),
        Table(_score_table(data.scores),
              "Gaussian NLL and CRPS of every normalised test rating under the row's "
              "N(mu, sigma²) (lower is better); coverage of central 50/80/95% intervals")]
    if not data.variance_parts.empty:
        blocks.append(Table(data.variance_parts.drop(columns=["row_key"]).map(
            lambda v: fmt(v) if isinstance(v, float) else v),
            "Aleatoric and epistemic variance, mean over test songs (and seeds). Deep "
            "ensembles: members' sigma² and the variance of their mu; last-layer Laplace: "
            "the noise variance (training residuals) and the output layer's posterior "
            "variance; random seeds (ensemble) and MC dropout: all model (epistemic)"))
    if not data.conformal_factors.empty:
        blocks += [Heading("Conformal calibration of the predicted SD"),
                   Paragraph(CONFORMAL_TEXT),
                   Table(_conformal_summary(data), "factor c: mean [min, max] over the row's "
                         "members; coverage of the central 80 % interval of the test ratings "
                         "before and after; per-seed factors in "
                         f"{table_path(CONFORMAL_FACTORS_STEM)}")]
    key = _key_comparisons(data)
    if not key.empty:
        blocks += [Heading("Paired comparisons"),
                   Table(key, "A - B on the same bootstrap resamples of the test songs; all "
                              "pairs, and seed-paired Wilcoxon tests, in "
                              f"{table_path(COMPARISONS_STEM)}")]
    return blocks


def build_document(data: ReportData, figures: dict[str, str]) -> list[Block]:
    """The report's main part as blocks, in reading order; ``figures``: figure name -> its
    path relative to the report folder (the sections of the optional axes follow it)."""
    features = feature_set_caption(data.sweep.predictions, data.sweep.config or {})
    return [*_main_tables_blocks(data, figures, features), *_run_blocks(data),
            *_table_detail_blocks(data, features), *_baseline_and_ceiling_blocks(data),
            *_uncertainty_blocks(data), Heading("Figures"),
            *(Image(path, _caption(name, data)) for name, path in figures.items())]


def problems_frame(data: ReportData) -> pd.DataFrame:
    """Every problem the reading met: one line per source, with its reason."""
    return pd.DataFrame([{"source": p.source, "problem": p.reason} for p in data.problems],
                        columns=["source", "problem"])
