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

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compute.bootstrap import DEFAULT_N_BOOT, paired_bootstrap, paired_seed_test
from analysis.compute.rows import PredictionRow
from analysis.present.render import Block, Heading, Image, Paragraph, Table, to_markdown
from analysis.present.table_layout import fmt
from analysis.read.sweep_results import FEATURE_SET_COLUMN
from mer_uq import schema
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


def _load(folder: Path) -> tuple[FeatureSet, Any, np.ndarray]:
    from analysis.compute.pipeline import load_reference_rows

    sweep, dataset, song_ids, rows = load_reference_rows(folder, FeatureAxisError)
    fs = FeatureSet(feature_set_name(sweep.config), folder, sweep.config, rows, str(folder))
    return fs, dataset, song_ids


def load_feature_sets(folders: list[Path]) -> tuple[list[FeatureSet], Any, np.ndarray]:
    """Every folder's rows, checked to share test songs and labels; names made unique."""
    if len(folders) < 2:
        raise FeatureAxisError("give at least two sweep folders (one per feature set)")
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


def paired_comparisons(result: Any, sets: list[FeatureSet]) -> pd.DataFrame:
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


def axis_figure(table: pd.DataFrame) -> Any:
    """r of the mean (top) and SD (bottom) per feature set, one line per row, 95 % bands
    as error bars, the ceiling as a grey band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(table["feature_set"]))
    every_row = list(dict.fromkeys(table["row"]))  # one colour per row in every panel
    colours = {row: f"C{i % 10}" for i, row in enumerate(every_row)}
    x = np.arange(len(sets))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True, squeeze=False)
    for i, target in enumerate((MEAN, SD)):
        for j, dim in enumerate(schema.DIMENSIONS):
            ax = axes[i][j]
            cell = table[(table["target"] == target) & (table["dimension"] == dim)]
            rows = list(dict.fromkeys(cell["row"]))
            for k, row in enumerate(rows):
                line = cell[cell["row"] == row].set_index("feature_set").reindex(sets)
                offset = (k - (len(rows) - 1) / 2) * 0.06
                err = np.vstack([line["value"] - line["ci_low"], line["ci_high"] - line["value"]])
                ax.errorbar(x + offset, line["value"], yerr=np.where(np.isfinite(err), err, 0),
                            marker="o", capsize=2, label=row, color=colours[row])
            if len(cell) and np.isfinite(cell["ceiling"].iloc[0]):
                c = cell.iloc[0]
                ax.axhspan(c["ceiling_ci_low"], c["ceiling_ci_high"], color="0.85")
                ax.axhline(c["ceiling"], color="0.5", ls="--", lw=1, label="ceiling")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{dim}: predicted vs empirical {target.upper()}")
            ax.set_ylabel("Pearson r")
            ax.set_xticks(x, sets, rotation=20, ha="right")
    handles = {h.get_label(): h for ax in fig.axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return fig


def _display(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "feature set": table["feature_set"], "row": table["row_label"],
        "target": table["target"], "dimension": table["dimension"],
        "r": [fmt(v) if s or not np.isfinite(sd) else f"{fmt(v)} ± {fmt(sd)}"
              for v, sd, s in zip(table["value"], table["sd_over_seeds"], table["single"],
                                  strict=True)],
        "95 % band": [f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in
                      zip(table["ci_low"], table["ci_high"], strict=True)],
        "ceiling": [f"{fmt(c)} [{fmt(lo)}, {fmt(hi)}]" for c, lo, hi in
                    zip(table["ceiling"], table["ceiling_ci_low"], table["ceiling_ci_high"],
                        strict=True)],
    })


def _comparison_display(comp: pd.DataFrame) -> pd.DataFrame:
    if comp.empty:
        return comp
    return pd.DataFrame({
        "A": comp["A"], "B": comp["B"], "row": comp["row"], "target": comp["target"],
        "dimension": comp["dimension"], "r(A) - r(B)": comp["difference"].map(fmt),
        "95 % paired bootstrap": [f"[{fmt(lo)}, {fmt(hi)}]" for lo, hi in
                                  zip(comp["ci_low"], comp["ci_high"], strict=True)],
        "p (bootstrap)": comp["p_bootstrap"].map(lambda p: fmt(p, 3)),
        "p (seed Wilcoxon)": comp["p_wilcoxon"].map(lambda p: fmt(p, 3)),
    })


def section_blocks(sets: list[FeatureSet], dataset: Any, song_ids: np.ndarray,
                   ceilings: pd.DataFrame, n_boot: int, seed: int, tables_dir: Path,
                   figure_path: Path, figure_ref: str) -> list[Block]:
    """Compute the feature-set comparison, write its tables and figure, return its blocks.
    ``ceilings``: analysis.compute.ceilings.ceiling_cells of the same test songs."""
    from analysis.compute.bootstrap import resample_indices
    from analysis.compute.table_cells import compute_tables, empirical_targets
    from analysis.present.figures import save_figure
    from analysis.write.report_files import write_frame

    targets = empirical_targets(dataset.songs, song_ids)
    indices = resample_indices(song_ids.size, n_boot, seed) if n_boot > 0 else None
    result = compute_tables(combined_rows(sets), targets, indices)
    table = correlation_table(result.cells, ceilings)
    comp = paired_comparisons(result, sets)
    write_frame(table, tables_dir / "feature_axis")
    write_frame(comp, tables_dir / "feature_axis_comparisons")
    save_figure(axis_figure(table), figure_path)
    return [
        Heading("Feature sets: which representation carries the spread?"),
        Paragraph(f"{len(sets)} feature sets on the same {song_ids.size} test songs: "
                  + "; ".join(f"{fs.name} ({fs.source})" for fs in sets)
                  + ". Pearson r of the predicted mean and SD with the raters' per-song "
                  "mean and SD, mean ± SD over seeds, 95 % bootstrap band over test songs "
                  f"({n_boot} resamples, the same for every feature set); ceiling: "
                  "sqrt(split-half reliability) of the same songs."),
        Table(_display(table), "Pearson r per feature set (each line names its feature set: "
                               "no cell mixes two); every cell in tables/feature_axis.csv"),
        Image(figure_ref, "r per feature set; error bars: 95 % bootstrap band; grey: the "
                          "reliability ceiling and its band"),
        Table(_comparison_display(comp), "Paired comparisons across feature sets on the "
                                         "same test songs (same resamples, same seeds)"),
    ]


def run(folders: list[Path], out: Path, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
        reliability_repeats: int = 200, reliability_boot: int = 1000) -> list[Block]:
    """Several sweep folders, one feature set each: write OUT/feature_axis.* and return
    the section's blocks."""
    from analysis.compute.ceilings import ceiling_cells, reliability_of_songs
    from mer_uq.sweep_folder import write_text_atomically

    sets, dataset, song_ids = load_feature_sets(folders)
    ceilings = ceiling_cells(reliability_of_songs(dataset.ratings, song_ids,
                                                  reliability_repeats, reliability_boot, seed))
    out.mkdir(parents=True, exist_ok=True)
    blocks = section_blocks(sets, dataset, song_ids, ceilings, n_boot, seed, out,
                            out / "feature_axis.png", "feature_axis.png")
    write_text_atomically(out / "feature_axis.md", to_markdown(blocks))
    return blocks


# --- one sweep with a feature axis (--features A,B / --feature-column c1,c2) -------------

def sweep_feature_sets(predictions: pd.DataFrame, config: dict[str, Any]) -> list[str]:
    """The feature-set labels of a sweep, in the order sweep.json gives them ([] without
    the axis)."""
    if FEATURE_SET_COLUMN not in predictions.columns:
        return []
    present = set(predictions[FEATURE_SET_COLUMN].dropna())
    ordered = [f["label"] for f in config.get("feature_sets") or [] if f["label"] in present]
    return ordered + sorted(present - set(ordered))


def reference_feature_set(predictions: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """The predictions of the feature set the report's main tables show: the first one
    given (sweep.json's features / feature_column). Unchanged without the axis."""
    labels = sweep_feature_sets(predictions, config)
    if not labels:
        return predictions
    keep = predictions[FEATURE_SET_COLUMN] == labels[0]
    return predictions.loc[keep].reset_index(drop=True)


def feature_set_caption(predictions: pd.DataFrame, config: dict[str, Any]) -> str:
    """'' without the axis; else which feature set the main tables show."""
    labels = sweep_feature_sets(predictions, config)
    return "" if not labels else (f" [feature set {labels[0]}; the other "
                                  f"{len(labels) - 1} in 'Feature sets' below]")


def write_section(data: Any, report_dir: Path) -> list[Block]:
    """The report's section for a sweep with a feature axis; [] without one."""
    from analysis.compute.data_axes import reference_cell
    from analysis.compute.pipeline import EVAL_SPLIT
    from analysis.compute.rows import build_rows
    from analysis.write.report_files import FIGURES_DIRNAME, TABLES_DIRNAME

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
    figure = report_dir / FIGURES_DIRNAME / "feature_axis.png"
    return section_blocks(sets, data.dataset, data.song_ids, data.ceilings,
                          data.settings.n_boot, data.settings.seed, report_dir / TABLES_DIRNAME,
                          figure, figure.relative_to(report_dir).as_posix())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.feature_axis",
                                     description="Compare sweeps of the same methods on "
                                                 "different feature sets")
    parser.add_argument("folders", type=Path, nargs="+", help="one sweep folder per feature set")
    parser.add_argument("--out", type=Path, required=True, help="folder for feature_axis.*")
    parser.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT)
    parser.add_argument("--reliability-repeats", type=int, default=200)
    parser.add_argument("--reliability-boot", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        blocks = run(args.folders, args.out, args.n_boot,
                     reliability_repeats=args.reliability_repeats,
                     reliability_boot=args.reliability_boot)
    except (FeatureAxisError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(to_markdown(blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
