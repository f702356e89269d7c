"""Write DIR/report/: every table (md/csv/json), the figures, report.md and report.html,
optionally logged to one W&B summary run.

Entry point of the contract in docs/architecture.md:
``write_report(sweep_dir, *, use_wandb=False, wandb_mode="offline",
wandb_project="mer-uq", settings=None) -> ReportWritten`` (what it wrote: the documents'
paths and the tables a sweep prints). A missing or corrupt trial file is named in the
report and everything else is still reported. The command line is analysis.report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis.compute.data_axes import data_axes_result
from analysis.compute.feature_axis import feature_axis_of_report
from analysis.compute.pipeline import AnalysisSettings, ReportData, computing_report
from analysis.compute.readout_audit import readout_audit_of_report
from analysis.compute.table_cells import TABLE_TITLES
from analysis.present.data_axes_section import data_axes_blocks, data_axes_figures
from analysis.present.document import (
    COMPARISONS_STEM,
    CONFORMAL_FACTORS_STEM,
    PROBLEMS_STEM,
    build_document,
    json_default,
    problems_frame,
)
from analysis.present.feature_axis_section import FIGURE_NAME as FEATURE_AXIS_FIGURE
from analysis.present.feature_axis_section import axis_figure, feature_axis_blocks
from analysis.present.figures import report_figures
from analysis.present.readout_audit_section import audit_blocks, audit_not_run_blocks
from analysis.present.render import Block, markdown_table, to_html, to_markdown
from analysis.present.report_paths import (
    FIGURES_DIRNAME,
    REPORT_HTML,
    REPORT_MARKDOWN,
    TABLES_DIRNAME,
    figure_path,
)
from analysis.present.table_layout import paper_comparison, paper_layout
from analysis.read.sweep_results import trial_overview
from analysis.write.files import figure_png, save_figure, write_frame
from analysis.write.wandb_summary import DEFAULT_MODE, DEFAULT_PROJECT, log_summary
from mer_uq.folder_swap import staged_folder
from mer_uq.sweep_folder import REPORT_DIR, TRIALS_DIR, write_text_atomically

# The tables written as Markdown too (the paper-layout ones a reader opens first).
MARKDOWN_STEMS = frozenset({"table2", "table3", "table2_bootstrap_ci", "table3_bootstrap_ci",
                            "table2_vs_paper", "table3_vs_paper"})


@dataclass(frozen=True)
class ReportWritten:
    """What ``write_report`` wrote, so a caller never reads the report back to use it."""

    report_dir: Path
    markdown: Path  # report.md
    html: Path  # report.html
    tables: dict[str, Path]  # file stem -> its CSV (its JSON and Markdown lie beside it)
    figures: dict[str, Path]  # figure name -> its PNG
    # Table 2 and Table 3 as printed on a console: (title, the Markdown of tables/<stem>.md)
    console_tables: tuple[tuple[str, str], ...]


def _output_tables(data: ReportData) -> dict[str, pd.DataFrame]:
    """Every table written to disk (and to W&B), by file stem."""
    out = {
        "table2": paper_layout(data.cells, data.ceilings, "table2"),
        "table3": paper_layout(data.cells, data.ceilings, "table3"),
        "table2_bootstrap_ci": paper_layout(data.cells, data.ceilings, "table2", True),
        "table3_bootstrap_ci": paper_layout(data.cells, data.ceilings, "table3", True),
        **({} if data.paper is None else {  # the published numbers are DEAM's only
            "table2_vs_paper": paper_comparison(data.cells, "table2"),
            "table3_vs_paper": paper_comparison(data.cells, "table3")}),
        "cells": data.cells,
        "per_seed": data.tables.per_seed,
        "ceilings": data.ceilings,
        "reliability_test_songs": data.reliability,
        COMPARISONS_STEM: data.comparisons,
        "rating_scores": data.scores,
        "calibration": data.calibration,
        "variance_parts": data.variance_parts,
        CONFORMAL_FACTORS_STEM: data.conformal_factors,
        TRIALS_DIR: trial_overview(data.sweep),  # the trials table is named after the folder
        PROBLEMS_STEM: problems_frame(data),
    }
    return out


def write_report(sweep_dir: Path, *, use_wandb: bool = False, wandb_mode: str = DEFAULT_MODE,
                 wandb_project: str = DEFAULT_PROJECT,
                 settings: AnalysisSettings | None = None) -> ReportWritten:
    """Write DIR/report/ and say what was written (the contract's entry point). The main
    figures need no data summary, so they are drawn while its thread finishes."""
    with computing_report(Path(sweep_dir), settings) as pending:
        numbers = pending.numbers
        figures = {name: figure_png(fig) for name, fig in report_figures(
            numbers["dataset"].songs, numbers["rows"], numbers["targets"],
            numbers["calibration"]).items()}
        data = pending.result()
    return write_report_files(data, use_wandb=use_wandb, wandb_mode=wandb_mode,
                              wandb_project=wandb_project, figures=figures)


def write_report_files(data: ReportData, *, use_wandb: bool = False,
                       wandb_mode: str = DEFAULT_MODE, wandb_project: str = DEFAULT_PROJECT,
                       figures: dict[str, bytes] | None = None) -> ReportWritten:
    """Write the tables, figures, report.md and report.html of already computed numbers
    (``figures``: the main figures already drawn, as PNG bytes by name; drawn here if
    not given)."""
    sweep_dir = data.sweep.sweep_dir
    with staged_folder(sweep_dir / REPORT_DIR) as report_dir:  # swapped in whole at the end
        tables, figures = _write_report_folder(data, report_dir, figures)
    final = sweep_dir / REPORT_DIR
    main_figures = {k: final / v.relative_to(report_dir) for k, v in figures.items()}
    if use_wandb:
        log_summary(final, tables, main_figures, data.sweep.config,
                    mode=wandb_mode, project=wandb_project, name=f"report-{sweep_dir.name}")
    return ReportWritten(
        report_dir=final, markdown=final / REPORT_MARKDOWN, html=final / REPORT_HTML,
        tables={stem: final / TABLES_DIRNAME / f"{stem}.csv" for stem in tables},
        figures=main_figures,
        console_tables=tuple((title, markdown_table(tables[stem]) + "\n")
                             for stem, title in TABLE_TITLES.items()))


def _write_report_folder(data: ReportData, report_dir: Path,
                         drawn: dict[str, bytes] | None = None
                         ) -> tuple[dict[str, pd.DataFrame], dict[str, Path]]:
    """Every file of the report into ``report_dir`` (a staging folder); ``drawn``: the
    main figures as PNG bytes, when already drawn."""
    tables = _output_tables(data)
    for stem, frame in tables.items():
        write_frame(frame, report_dir / TABLES_DIRNAME / stem, markdown=stem in MARKDOWN_STEMS)
    write_text_atomically(report_dir / TABLES_DIRNAME / "data_summary.json",
                          json.dumps(data.data_summary, indent=1, default=json_default))
    figures = _write_figures(drawn if drawn is not None else report_figures(
        data.dataset.songs, data.rows, data.targets, data.calibration), report_dir)
    blocks = build_document(data, {name: figure_path(name) for name in figures})
    blocks += _optional_sections(data, report_dir, tables, figures)
    write_text_atomically(report_dir / REPORT_MARKDOWN, to_markdown(blocks))
    write_text_atomically(report_dir / REPORT_HTML,
                          to_html(blocks, f"mer-uq report: {data.sweep.sweep_dir.name}"))
    return tables, figures


def _write_figures(figures: dict[str, Figure] | dict[str, bytes], report_dir: Path
                   ) -> dict[str, Path]:
    return {name: save_figure(fig, report_dir / FIGURES_DIRNAME / f"{name}.png")
            for name, fig in figures.items()}


def _write_tables(frames: dict[str, pd.DataFrame], report_dir: Path,
                  written: dict[str, pd.DataFrame]) -> None:
    for stem, frame in frames.items():
        write_frame(frame, report_dir / TABLES_DIRNAME / stem)
    written.update(frames)


def _optional_sections(data: ReportData, report_dir: Path, tables: dict[str, pd.DataFrame],
                       figures: dict[str, Path]) -> list[Block]:
    """The sections a sweep has only with its axes: data axes (--raters/--train-fraction),
    feature sets (a feature axis), the readout audit (two-output methods). Each one's
    numbers come from analysis.compute, its files are written here (and added to
    ``tables`` and ``figures``, what the report says it wrote), its blocks come from
    analysis.present; a sweep without the axis gets no section and no file."""
    blocks: list[Block] = []
    axes = data_axes_result(data)
    if axes is not None:
        _write_tables(axes.frames(), report_dir, tables)
        axes_figures = _write_figures(data_axes_figures(axes), report_dir)
        figures.update(axes_figures)
        blocks += data_axes_blocks(axes, {name: figure_path(name) for name in axes_figures})
    feature_sets = feature_axis_of_report(data)
    if feature_sets is not None:
        _write_tables(feature_sets.frames(), report_dir, tables)
        figures.update(_write_figures(
            {FEATURE_AXIS_FIGURE: axis_figure(feature_sets.correlations)}, report_dir))
        blocks += feature_axis_blocks(feature_sets, figure_path(FEATURE_AXIS_FIGURE))
    audit = readout_audit_of_report(data)
    if audit is not None and audit.not_run:
        blocks += audit_not_run_blocks(audit.not_run)
    elif audit is not None:
        _write_tables(audit.frames(), report_dir, tables)
        blocks += audit_blocks(audit.cells, audit.summary)
    return blocks
