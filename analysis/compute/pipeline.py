"""Compute every number of the report from a sweep folder, without writing anything.

Kept apart from the writing (analysis.write) so that tests, notebooks and the W&B
summary can use the numbers directly, and so that "what is computed" and "how it is
shown" can be checked separately.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compute.baselines import compute_baselines
from analysis.compute.bootstrap import DEFAULT_N_BOOT, resample_indices
from analysis.compute.ceilings import ceiling_cells, reliability_frame, reliability_of_songs
from analysis.compute.conformal_rows import calibrated_rows
from analysis.compute.paired_tests import compare_rows
from analysis.compute.rating_scores import calibration_table, rating_score_table, variance_parts
from analysis.compute.rows import (
    CALIBRATION_SPLIT,
    EVAL_SPLIT,
    GROUP_ORDER,
    PAPER,
    PredictionRow,
    build_rows,
    loss_form,
    paper_row_key,
)
from analysis.compute.table_cells import TableResult, compute_tables, empirical_targets
from analysis.read.coverage import coverage_problems, planned_songs
from analysis.read.paper_tables import CELL_COLUMNS, PaperTables, compare_cell, paper_reference
from analysis.read.reference_predictions import reference_cell, reference_feature_set
from analysis.read.sweep_results import (
    SweepResults,
    TrialProblem,
    load_sweep,
    sweep_config_with_problems,
)
from mer_uq.blas_threads import one_blas_thread
from mer_uq.data.dataset import DeamDataset
from mer_uq.data.features import standardise
from mer_uq.data.summary import summarise
from mer_uq.sources import load_feature_table, load_trained_dataset


def load_reference_rows(folder: Path, error: type[Exception]
                        ) -> tuple[SweepResults, DeamDataset, np.ndarray, list[PredictionRow]]:
    """One sweep folder read for a command that compares folders (analysis.audit,
    analysis.feature_axis): its trials, its dataset, the test songs and the table rows of
    its reference data-axes cell. A folder that is no sweep, or has no readable trial
    file, raises ``error`` (the command's own one-line error) naming it."""
    from mer_uq.sweep_folder import looks_like_sweep

    if not folder.is_dir() or not looks_like_sweep(folder):
        raise error(f"{folder}: not a sweep folder (give the --out folder of a sweep)")
    sweep = load_sweep(folder)
    if sweep.predictions.empty:
        raise error(f"{folder}: no readable trial file")
    dataset = load_trained_dataset(sweep.config)
    song_ids = dataset.song_ids(EVAL_SPLIT)
    rows = build_rows(reference_cell(sweep.predictions), song_ids, EVAL_SPLIT)
    return sweep, dataset, song_ids, rows


BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class AnalysisSettings:
    """How much resampling the report spends (defaults: the full report)."""

    n_boot: int = DEFAULT_N_BOOT
    reliability_repeats: int = 200
    reliability_boot: int = 1000
    # The data summary's split-half reliability over ALL songs has its own budget: it costs
    # (songs / test songs) times the test-song ceilings, so a large dataset can spend less
    # there without touching the ceilings that the table cells are read against.
    summary_reliability_repeats: int = 200
    summary_reliability_boot: int = 1000
    seed: int = BOOTSTRAP_SEED
    # SD across the random seeds' means: 1 = the paper's eq. 5 (n - 1), 0 = population SD.
    seeds_sd_ddof: int = 1


@dataclass
class ReportData:
    """Every number the report shows, in long tables."""

    sweep: SweepResults
    dataset: DeamDataset
    data_summary: dict[str, Any]
    song_ids: np.ndarray
    rows: list[PredictionRow]
    targets: dict[tuple[str, str], np.ndarray]
    tables: TableResult
    cells: pd.DataFrame  # table cells with their ceiling and published value
    ceilings: pd.DataFrame
    reliability: pd.DataFrame
    comparisons: pd.DataFrame
    scores: pd.DataFrame
    calibration: pd.DataFrame
    variance_parts: pd.DataFrame
    conformal_factors: pd.DataFrame  # conformal_rows: one factor per row, seed, dimension
    baseline_details: dict[str, Any]
    paper: PaperTables | None  # None: the data is not DEAM, nothing is compared with the paper
    loss_forms: dict[str, str]
    settings: AnalysisSettings
    problems: list[TrialProblem] = field(default_factory=list)


def _baselines(sweep: SweepResults, dataset: DeamDataset
               ) -> tuple[pd.DataFrame | None, dict[str, Any], list[TrialProblem]]:
    """Baseline predictions, or a problem entry when the features cannot be read (the
    trained methods are still reported)."""
    try:
        features = load_feature_table(sweep.config)
        table = standardise(features, dataset.song_ids("train"))
        result = compute_baselines(dataset.songs, table.rows(dataset.songs["song_id"].to_numpy()))
    except Exception as exc:  # any feature problem costs the baselines, not the report
        return None, {}, [TrialProblem("features", f"baselines skipped: {exc}")]
    return result.predictions, result.details, []


def _with_conformal(rows: list[PredictionRow], predictions: pd.DataFrame,
                    dataset: DeamDataset, seeds_sd_ddof: int
                    ) -> tuple[list[PredictionRow], pd.DataFrame]:
    """The rows plus their split-conformal twins, calibrated on the validation songs'
    individual ratings (analysis.compute.conformal_rows), in print order."""
    valid_ids = dataset.song_ids(CALIBRATION_SPLIT)
    valid_rows = build_rows(predictions, valid_ids, CALIBRATION_SPLIT,
                            seeds_sd_ddof=seeds_sd_ddof)
    twins, factors = calibrated_rows(rows, valid_rows, dataset.ratings, valid_ids)
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    return sorted(rows + twins, key=lambda r: rank[r.group]), factors


def _with_ceiling_and_paper(cells: pd.DataFrame, ceilings: pd.DataFrame,
                            paper: PaperTables | None) -> pd.DataFrame:
    """Cells + their ceiling + the published cell they are compared with (the paper's
    layout decides which row that is: analysis.compute.rows.paper_row_key) and the verdict.
    Without ``paper`` (not DEAM data) the paper's columns are there, and empty."""
    merged = cells.merge(ceilings.drop(columns=["n_songs"]), on=["target", "dimension", "metric"],
                         how="left")
    published_cells = (paper.cells if paper is not None else
                       pd.DataFrame(columns=list(CELL_COLUMNS)).astype(
                           {"paper_value": np.float64, "paper_sd": np.float64}))
    published = published_cells.assign(row_key=[
        paper_row_key(m, t) for m, t in zip(published_cells["method"], published_cells["table"],
                                            strict=True)])
    merged = merged.merge(published.rename(columns={"method": "paper_method"}),
                          on=["table", "row_key", "dimension", "metric"], how="left")
    merged.loc[merged["group"] != PAPER, ["paper_method", "paper_value", "paper_sd",
                                          "paper_text"]] = np.nan
    verdicts = [compare_cell(v, lo, hi, pv, pt) if isinstance(pt, str) else
                {"difference": np.nan, "paper_in_ci": None, "ours_below_zero": None,
                 "agrees": None}
                for v, lo, hi, pv, pt in zip(merged["value"], merged["ci_low"],
                                             merged["ci_high"], merged["paper_value"],
                                             merged["paper_text"], strict=True)]
    return pd.concat([merged, pd.DataFrame(verdicts, index=merged.index)], axis=1)


def _data_summary(dataset: DeamDataset, settings: AnalysisSettings) -> dict[str, Any]:
    """The data summary (mer_uq.data.summary) on the report's budget for its reliability."""
    return summarise(dataset, n_repeats=settings.summary_reliability_repeats,
                     n_boot=settings.summary_reliability_boot, seed=settings.seed)


def _private_copy(dataset: DeamDataset) -> DeamDataset:
    """The dataset with its own copies of the tables, for a thread that reads them while
    this one reads the originals (pandas promises nothing for concurrent use of one
    frame, read-only or not)."""
    return replace(dataset, songs=dataset.songs.copy(), ratings=dataset.ratings.copy())


@dataclass(frozen=True)
class PendingReport:
    """The report's numbers while the data summary is still being computed on its thread:
    ``numbers`` holds every field of ReportData but ``data_summary``; ``result()`` waits
    for the summary and gives the whole."""

    numbers: dict[str, Any]
    summary: Future

    def result(self) -> ReportData:
        return ReportData(data_summary=self.summary.result(), **self.numbers)


@contextmanager
def computing_report(sweep_dir: Path, settings: AnalysisSettings | None = None
                     ) -> Iterator[PendingReport]:
    """compute_report_data in two steps, for a caller with work of its own that needs no
    data summary (the writer draws the figures): yields once every other number is
    computed, while the data summary may still be running; leaving the block waits for it.

    The data summary depends on nothing else the report computes and costs the most with
    many songs (its split-half reliability over all of them), so it runs on a second
    thread beside the rest: its numbers are those of a serial run, bit for bit (its own
    generator, its own copy of the tables, one BLAS thread for the whole block:
    mer_uq.blas_threads), and where both sides fail, the data summary's error is the one
    raised, as when it ran first."""
    settings = settings or AnalysisSettings()
    config, _ = sweep_config_with_problems(Path(sweep_dir))  # a bad record stops here, by key
    dataset = load_trained_dataset(config)
    sweep = load_sweep(Path(sweep_dir), planned_songs(dataset))
    with one_blas_thread(), ThreadPoolExecutor(1, "data-summary") as pool:
        summary = pool.submit(_data_summary, _private_copy(dataset), settings)
        try:
            numbers = _test_split_numbers(config, sweep, dataset, settings)
        except BaseException:
            summary.result()  # its own error first, if it has one
            raise
        yield PendingReport(numbers, summary)


def compute_report_data(sweep_dir: Path, settings: AnalysisSettings | None = None
                        ) -> ReportData:
    """Load the sweep and its dataset, and compute tables, ceilings, baselines, scores,
    bootstrap intervals, comparisons and the data summary (computing_report)."""
    with computing_report(sweep_dir, settings) as pending:
        return pending.result()


def _test_split_numbers(config: dict[str, Any], sweep: SweepResults, dataset: DeamDataset,
                        settings: AnalysisSettings) -> dict[str, Any]:
    """Every field of ReportData but the data summary: the rows of the test split, their
    table cells with bootstrap intervals, ceilings, baselines, scores and comparisons."""
    song_ids = dataset.song_ids(EVAL_SPLIT)
    baseline_predictions, baseline_details, problems = _baselines(sweep, dataset)
    # one cell of each axis: the reference feature set, the fullest data-axes cell
    cell = reference_cell(reference_feature_set(sweep.predictions, sweep.config or {}))
    rows = build_rows(cell, song_ids, EVAL_SPLIT, baseline_predictions, settings.seeds_sd_ddof)
    rows, conformal_factors = _with_conformal(rows, cell, dataset, settings.seeds_sd_ddof)
    problems = list(sweep.problems) + problems
    problems += coverage_problems(sweep.config, sweep.predictions, song_ids, problems)
    problems += [TrialProblem(r.label, note) for r in rows for note in r.notes]
    targets = empirical_targets(dataset.songs, song_ids)
    indices = (resample_indices(song_ids.size, settings.n_boot, settings.seed)
               if settings.n_boot > 0 else None)
    tables = compute_tables(rows, targets, indices)
    rel = reliability_of_songs(dataset.ratings, song_ids, settings.reliability_repeats,
                               settings.reliability_boot, settings.seed)
    ceilings = ceiling_cells(rel)
    paper = paper_reference(config)
    methods = sorted(sweep.predictions["method"].unique())
    return dict(
        sweep=sweep, dataset=dataset, song_ids=song_ids, rows=rows,
        targets=targets, tables=tables,
        cells=_with_ceiling_and_paper(tables.cells, ceilings, paper), ceilings=ceilings,
        reliability=reliability_frame(rel), comparisons=compare_rows(tables),
        scores=rating_score_table(rows, dataset.ratings, song_ids),
        calibration=calibration_table(rows, dataset.ratings, song_ids),
        variance_parts=variance_parts(rows), conformal_factors=conformal_factors,
        baseline_details=baseline_details, paper=paper,
        loss_forms={m: loss_form(m) for m in methods}, settings=settings, problems=problems,
    )
