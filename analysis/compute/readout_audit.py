"""The readout audit: how might the paper's Table 3 have been computed?

The paper prints negative SD correlations for NLL, MSE and KLD in every cell and
R² << 0 everywhere. A two-output model's spread head can be read in several ways (the
network's softplus output z is -log sigma under some parameterisations, its reciprocal is a
precision, its square a variance), and a table made from a different readout than the one
the loss was trained for has exactly that kind of signature. This module recomputes
Table 3 from the same trial files under each named readout of the spread (and, given a
second sweep folder, under the other label version), and compares every cell with the
published one: sign agreement, the published value inside our 95 % bootstrap interval, and
the "<< 0" cells. Each readout is a HYPOTHESIS about how a published table may have been
computed, not a claim about anyone's code; the section says so in those words.

Nothing here is a new statistic: the cells are analysis.compute.table_cells' (mer_uq.scores' point
scores, the bootstrap of analysis.compute.bootstrap on the same index matrix as the report), the
verdicts analysis.read.paper_tables.compare_cell's, and the only fixed numbers are the paper's
published cells (analysis.read.paper_tables). Only the rows of two-output methods change with the
readout; the random-seeds ensemble and MC dropout have no spread head and are scored as
they are, so their cells are the same under every readout.

``python -m analysis.audit DIR [OTHER_LABELS_DIR]`` prints the audit of one or two sweep
folders; the report includes it for its own folder whenever the sweep has two-output
methods. The published Table 3 is DEAM's: on a generic ratings table or synthetic data
the audit is not run, and the report (or the command, exit 2) says why in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compute.bootstrap import DEFAULT_N_BOOT, percentile_interval, resample_indices
from analysis.compute.pipeline import ReportData, load_reference_rows
from analysis.compute.rows import TWO_OUTPUT_METHODS, PredictionRow, paper_row_key
from analysis.compute.table_cells import (
    SharedDraws,
    bootstrap_cell,
    empirical_targets,
    member_scores,
)
from analysis.read.paper_tables import (
    PaperTables,
    compare_cell,
    is_far_below,
    load_paper_tables,
    paper_reference,
)
from analysis.read.sweep_results import sweep_config_with_problems
from mer_uq import schema
from mer_uq.methods import PAPER_METHODS
from mer_uq.scores import POINT_SCORES, SD
from mer_uq.sources import describe_data
from mer_uq.sweep_folder import SweepFolderError, looks_like_sweep

TABLE = "table3"
AUDIT_STEM = "readout_audit"
AUDIT_SUMMARY_STEM = "readout_audit_summary"


@dataclass(frozen=True)
class Readout:
    """One way of turning the recorded sigma_hat into the number Table 3 correlates."""

    name: str
    label: str
    apply: Callable[[np.ndarray], np.ndarray]
    why: str


def _safe(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A readout that is undefined for some sigma (log or 1/x of 0) gives NaN there, and
    the cell is then reported missing rather than computed on infinities."""
    def apply(sigma: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = fn(np.asarray(sigma, dtype=np.float64))
        return np.where(np.isfinite(out), out, np.nan)
    return apply


READOUTS: tuple[Readout, ...] = (
    Readout("sigma", "sigma", _safe(lambda s: s), "the recorded SD, as the losses define it"),
    Readout("sigma2", "sigma²", _safe(lambda s: s * s), "the variance"),
    Readout("log_sigma", "log sigma", _safe(np.log), "the log-SD"),
    Readout("neg_log_sigma", "-log sigma", _safe(lambda s: -np.log(s)),
            "a softplus head's output read as -log sigma"),
    Readout("inv_sigma", "1/sigma", _safe(lambda s: 1.0 / s), "the precision's square root"),
)
READOUT_NAMES: tuple[str, ...] = tuple(r.name for r in READOUTS)


def label_version(config: dict[str, Any]) -> str:
    """The label version a sweep trained and scored on (sweep.json's fix_swap)."""
    return ("corrected labels" if config.get("fix_swap", True)
            else "raw labels (--keep-swap)")


def audit_rows(rows: list[PredictionRow]) -> list[PredictionRow]:
    """The rows whose cells the paper publishes in Table 3, in the paper's order: its
    methods' per-seed rows and the random-seeds ensemble (analysis.compute.rows.paper_row_key)."""
    wanted = [paper_row_key(m, TABLE) for m in PAPER_METHODS]
    by_key = {r.key: r for r in rows if r.has_sigma}
    return [by_key[k] for k in wanted if k in by_key]


def has_spread_head(rows: list[PredictionRow]) -> bool:
    """Whether any row the audit compares with the paper (its Table 3 methods) is a
    per-seed two-output model: only then can a readout differ. A sweep of methods beyond
    the paper alone (student_t, a plugin) has nothing to audit."""
    return any(r.method in TWO_OUTPUT_METHODS and not r.single and r.has_sigma
               for r in audit_rows(rows))


def read_out(row: PredictionRow, readout: Readout) -> PredictionRow:
    """The row with its spread read out; rows without a spread head are returned as is."""
    if row.method not in TWO_OUTPUT_METHODS or row.single:
        return row
    return replace(row, sigma={d: readout.apply(s) for d, s in row.sigma.items()})


def _cell(row: PredictionRow, dim: str, metric: str, y_true: np.ndarray,
          indices: np.ndarray | None, shared: SharedDraws | None = None) -> dict[str, float]:
    """One Table 3 cell: mean and SD over members, and its bootstrap interval (the
    report's own functions on the report's index matrix; ``shared``: the report's draws,
    so that a cell the report already resampled is not resampled again)."""
    values = member_scores(row, SD, dim, y_true, metric)
    finite = values[np.isfinite(values)]
    low = high = float("nan")
    if indices is not None and finite.size == values.size:
        low, high = percentile_interval(bootstrap_cell(row, SD, dim, y_true, metric, indices,
                                                       shared=shared))
    return {"value": float(finite.mean()) if finite.size == values.size else float("nan"),
            "sd_over_seeds": float(finite.std(ddof=1))
            if finite.size == values.size and finite.size >= 2 and not row.single
            else float("nan"),
            "ci_low": low, "ci_high": high}


def _same_sign(ours: float, paper: float) -> bool | None:
    if not (np.isfinite(ours) and np.isfinite(paper)):
        return None
    return bool(np.sign(ours) == np.sign(paper))


def audit_cells(rows: list[PredictionRow], targets: dict[tuple[str, str], np.ndarray],
                indices: np.ndarray | None, paper: PaperTables, labels: str,
                shared: SharedDraws | None = None) -> pd.DataFrame:
    """Long table: one line per (readout, row, dimension, metric), with the published
    cell and the verdicts. A cell that cannot be computed (a readout undefined for some
    sigma) has NaN value and a reason. ``shared``: the report's draws on the same indices
    (table_cells.SharedDraws), so that the sigma readout's cells and the rows without
    a spread head (the report's own Table 3 cells) and the Spearman draws of a monotone
    readout are not resampled again (the same bits either way)."""
    published = paper.cells[paper.cells["table"] == TABLE].assign(
        row_key=lambda f: [paper_row_key(m, TABLE) for m in f["method"]])
    published = published.set_index(["row_key", "dimension", "metric"])
    fixed: dict[tuple[str, str, str], dict[str, float]] = {}  # rows a readout leaves as is
    lines = []
    for readout in READOUTS:
        for row in audit_rows(rows):
            read = read_out(row, readout)
            for dim in schema.DIMENSIONS:
                for metric in POINT_SCORES:
                    key = (row.key, dim, metric)
                    if read is row and key in fixed:
                        cell = fixed[key]
                    else:
                        cell = _cell(read, dim, metric, targets[(SD, dim)], indices, shared)
                        if read is row:
                            fixed[key] = cell
                    line: dict[str, Any] = {
                        "labels": labels, "readout": readout.name,
                        "readout_label": readout.label, "row_key": row.key,
                        "method": row.method, "read_out": read is not row,
                        "dimension": dim, "metric": metric, **cell}
                    line["problem"] = ("" if np.isfinite(cell["value"]) else
                                       f"{readout.label} undefined for some sigma_hat")
                    if key in published.index:
                        pub = published.loc[key]
                        verdict = compare_cell(cell["value"], cell["ci_low"], cell["ci_high"],
                                               pub["paper_value"], pub["paper_text"])
                        line.update(paper_text=pub["paper_text"],
                                    paper_value=pub["paper_value"],
                                    same_sign=_same_sign(cell["value"], pub["paper_value"]),
                                    paper_in_ci=verdict["paper_in_ci"],
                                    ours_below_zero=verdict["ours_below_zero"])
                    lines.append(line)
    return pd.DataFrame(lines)


def _count(series: pd.Series) -> int:
    return int(sum(v is True or v == True for v in series))  # noqa: E712 (object dtype)


def summarise_audit(cells: pd.DataFrame) -> pd.DataFrame:
    """Per hypothesis (label version, readout): how many published cells agree.

    numeric cells: the paper prints a number; '<< 0' cells: only a sign. Agreement =
    published value inside our 95 % interval (numeric) or ours < 0 ('<< 0'). Ranked by
    agreement, then by sign agreement over the numeric cells."""
    lines = []
    for (labels, readout), group in cells.groupby(["labels", "readout"], sort=False):
        published = group[group["paper_text"].notna()] if "paper_text" in group else group[:0]
        far_below = published["paper_text"].map(is_far_below).astype(bool)
        far, numeric = published[far_below], published[~far_below]
        in_ci, below = _count(numeric["paper_in_ci"]), _count(far["ours_below_zero"])
        lines.append({
            "labels": labels, "readout": readout,
            "readout_label": group["readout_label"].iloc[0],
            "numeric_cells": len(numeric), "same_sign": _count(numeric["same_sign"]),
            "paper_in_ci": in_ci, "far_below_cells": len(far), "ours_below_zero": below,
            "agreeing_cells": in_ci + below, "published_cells": len(published),
            "missing_cells": int(published["value"].isna().sum()),
        })
    summary = pd.DataFrame(lines)
    if summary.empty:
        return summary
    return summary.sort_values(["agreeing_cells", "same_sign"], ascending=False,
                               kind="stable").reset_index(drop=True)


# --- the report's own sweep -------------------------------------------------------------

def not_run_reason(record: dict[str, Any]) -> str:
    """Why the audit is not run on a sweep whose data is not DEAM (one sentence)."""
    return ("the readout audit compares Table 3 with the paper's, whose numbers are DEAM's; "
            f"this sweep ran on {describe_data(record)}")


@dataclass(frozen=True)
class ReadoutAuditResult:
    """The audit's numbers: one line per cell, and the summary per hypothesis; or, when it
    was not run (data that is not DEAM), no table and ``not_run``, the reason."""

    cells: pd.DataFrame
    summary: pd.DataFrame
    not_run: str = ""

    def frames(self) -> dict[str, pd.DataFrame]:
        """Its tables by file stem (none when the audit was not run)."""
        if self.not_run:
            return {}
        return {AUDIT_STEM: self.cells, AUDIT_SUMMARY_STEM: self.summary}


def readout_audit_of_report(data: ReportData) -> ReadoutAuditResult | None:
    """The audit of a report's own sweep, on the report's resamples; None for a sweep
    without two-output methods; not run (with the reason) for data that is not DEAM."""
    if not has_spread_head(data.rows):
        return None
    if data.paper is None:
        return ReadoutAuditResult(pd.DataFrame(), pd.DataFrame(),
                                  not_run=not_run_reason(data.sweep.config or {}))
    indices = (resample_indices(data.song_ids.size, data.settings.n_boot, data.settings.seed)
               if data.settings.n_boot > 0 else None)
    cells = audit_cells(data.rows, data.targets, indices, data.paper,
                        label_version(data.sweep.config or {}), data.tables.shared)
    return ReadoutAuditResult(cells, summarise_audit(cells))


# --- one or two sweep folders (python -m analysis.audit DIR [OTHER_LABELS_DIR]) ----------

class AuditError(ValueError):
    """A folder the audit cannot read: one line, exit 2."""


def folder_cells(sweep_dir: Path, n_boot: int, seed: int, paper: PaperTables
                 ) -> tuple[pd.DataFrame, str]:
    """The audit cells of one sweep folder, and its label version. A sweep on data that is
    not DEAM is refused before its data is read."""
    if sweep_dir.is_dir() and looks_like_sweep(sweep_dir):  # else load_reference_rows says
        try:
            config, _ = sweep_config_with_problems(sweep_dir)
        except SweepFolderError as err:  # a record off its schema: its own one line
            raise AuditError(str(err)) from None
        if paper_reference(config) is None:
            raise AuditError(f"{sweep_dir}: {not_run_reason(config)}")
    sweep, dataset, song_ids, rows = load_reference_rows(sweep_dir, AuditError)
    if not has_spread_head(rows):
        raise AuditError(f"{sweep_dir}: no two-output method with a spread (nll, mse, kld, "
                         "...): nothing to read out")
    targets = empirical_targets(dataset.songs, song_ids)
    indices = resample_indices(song_ids.size, n_boot, seed) if n_boot > 0 else None
    labels = label_version(sweep.config or {})
    return audit_cells(rows, targets, indices, paper, labels), labels


def run_audit(folders: list[Path], n_boot: int = DEFAULT_N_BOOT, seed: int = 0
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Audit cells and summary over one or two folders. Two folders with the same label
    version are told apart by their folder names."""
    paper = load_paper_tables()
    parts = [folder_cells(f, n_boot, seed, paper) for f in folders]
    if len(parts) == 2 and parts[0][1] == parts[1][1]:
        parts = [(c.assign(labels=f"{lab} ({f.name})"), lab)
                 for (c, lab), f in zip(parts, folders, strict=True)]
    cells = pd.concat([c for c, _ in parts], ignore_index=True)
    return cells, summarise_audit(cells)
