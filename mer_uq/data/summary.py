"""A JSON-ready summary of a loaded DeamDataset, shared by the CLI and the analysis (so
the report quotes the same counts, swap evidence and ceilings as the data CLI)."""

from __future__ import annotations

from typing import Any

from mer_uq.data.dataset import DeamDataset
from mer_uq.data.reliability import reliability_to_dict, split_half_reliability
from mer_uq.schema import SPLITS


def _counts(series: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def _crosstab(ds: DeamDataset, by: str) -> dict[str, dict[str, int]]:
    table = ds.songs.groupby([by, "split"]).size().unstack(fill_value=0)
    return {
        str(row): {s: int(table.at[row, s]) if s in table.columns else 0 for s in SPLITS}
        for row in table.index
    }


def summarise(ds: DeamDataset, n_repeats: int = 200, n_boot: int = 1000, seed: int = 0) -> dict:
    """Counts per year, split and genre, rater counts, the swap audit, the averaged-file
    check and the reliability ceilings of ``ds``."""
    songs = ds.songs
    rel = split_half_reliability(ds.ratings, n_repeats=n_repeats, n_boot=n_boot, seed=seed)
    return {
        "deam_dir": str(ds.deam_dir),
        "n_songs": len(songs),
        "n_ratings": len(ds.ratings),
        "years": _counts(songs["year"]),
        "splits": {s: int((songs["split"] == s).sum()) for s in SPLITS},
        "split_source": ds.split_source,
        "years_by_split": _crosstab(ds, "year"),
        "genres_by_split": _crosstab(ds, "genre"),
        "raters": {
            "distinct_raters": int(ds.ratings["rater"].nunique()),
            "songs_by_rater_count": _counts(songs["n_raters"]),
        },
        "swap": ds.swap.to_dict(),
        "averaged_check": ds.averaged_check.to_dict(),
        "reliability": reliability_to_dict(rel),
    }


def format_summary(summary: dict) -> str:
    """The human-readable form of ``summarise``'s dict."""
    lines = [
        f"DEAM folder: {summary['deam_dir']}",
        f"songs: {summary['n_songs']}  ratings: {summary['n_ratings']}  "
        f"distinct raters: {summary['raters']['distinct_raters']}",
        "songs by rater count: "
        + ", ".join(
            f"{k} raters: {v}" for k, v in summary["raters"]["songs_by_rater_count"].items()
        ),
        f"split ({summary['split_source']}): "
        + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()),
        "",
        f"{'':16}" + "".join(f"{s:>7}" for s in SPLITS),
    ]
    for section in ("years_by_split", "genres_by_split"):
        for name, row in summary[section].items():
            lines.append(f"{name:16}" + "".join(f"{row[s]:>7}" for s in SPLITS))
        lines.append("")
    swap = summary["swap"]
    lines.append(
        f"swap audit ({swap['method']}, margin {swap['margin']}): detected="
        f"{swap['detected']} subset={swap['subset']} corrected={swap['corrected']}"
    )
    for subset, corr in swap["correlations"].items():
        cells = "  ".join(f"{k}={v:.3f}" for k, v in corr.items())
        lines.append(f"  {subset}: {cells or 'no dynamic annotations'}")
    check = summary["averaged_check"]
    for ddof, c in check["sd"].items():
        lines.append(
            f"SD ddof={ddof} vs averaged file: {c['n_equal_after_rounding']}/"
            f"{c['n_songs']} equal after rounding, max abs diff {c['max_abs_diff']}"
        )
    lines.append(f"(targets use ddof={check['ddof_used']})")
    lines.append("")
    lines.append("reliability (split-half, Spearman-Brown) and correlation ceiling sqrt(rel):")
    for dim, stats in summary["reliability"].items():
        for stat, e in stats.items():
            lines.append(
                f"  {dim:8} {stat:4}  rel {e['reliability']:+.3f} "
                f"[{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]  ceiling {e['ceiling']:.3f} "
                f"[{e['ceiling_ci_low']:.3f}, {e['ceiling_ci_high']:.3f}]"
            )
    return "\n".join(lines)
