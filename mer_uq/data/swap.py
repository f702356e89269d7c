"""Audit of the valence/arousal column swap in DEAM's static annotations, from the data.

For each year subset we correlate, across songs, the static per-song means with the
per-song means of DEAM's averaged dynamic (per-second) annotations, straight (static
valence vs dynamic valence, arousal vs arousal) and crossed (static valence vs dynamic
arousal, arousal vs valence). Valence and arousal are themselves correlated in DEAM
(crossed correlations of about 0.6 on an unswapped subset), so the rule asks for a
clear margin:

    swapped  <=>  corr(static V, dyn A) - corr(static V, dyn V) > SWAP_MARGIN
             and  corr(static A, dyn V) - corr(static A, dyn A) > SWAP_MARGIN

i.e. EACH static column agrees better with the other dimension's dynamic ratings. On the
real files: 2013 crossed 0.96/0.95 vs straight 0.58/0.57 (swapped), 2014 crossed 0.59/0.57
vs straight 0.91/0.94 (not swapped), 2015 not swapped.

Without the dynamic files (or with fewer than MIN_SONGS songs of a subset in them) the
audit falls back to the documented finding: the 2013 subset (ids <= 1000) is swapped,
reported with ``method = "fallback-id-range"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mer_uq.schema import DIMENSIONS

SWAP_MARGIN = 0.2
MIN_SONGS = 10
METHOD_DYNAMIC = "dynamic-correlation"
METHOD_FALLBACK = "fallback-id-range"
FALLBACK_SWAPPED = ("2013",)

# Year subsets by song id (DEAM: 2013 ids 2..1000, 2014 1001..2000, 2015 2001..2058).
YEAR_BOUNDS = {"2013": (0, 1000), "2014": (1001, 2000), "2015": (2001, 10**9)}


def year_of(song_ids: np.ndarray) -> np.ndarray:
    """The DEAM release year of each song id."""
    years = np.full(len(song_ids), -1, dtype=np.int64)
    for name, (lo, hi) in YEAR_BOUNDS.items():
        years[(song_ids >= lo) & (song_ids <= hi)] = int(name)
    return years


def correlation_key(static_dim: str, dynamic_dim: str) -> str:
    return f"static_{static_dim}~dynamic_{dynamic_dim}"


@dataclass(frozen=True)
class SubsetAudit:
    """The verdict on one year subset, with the evidence it rests on."""

    subset: str
    n_songs: int
    method: str
    swapped: bool
    correlations: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SwapAudit:
    """What the loader found and did. ``subset`` names the swapped subset(s), '+'-joined,
    or None; ``correlations`` maps subset -> correlation_key -> Pearson r."""

    subsets: tuple[SubsetAudit, ...]
    corrected: bool
    margin: float = SWAP_MARGIN

    @property
    def detected(self) -> bool:
        return any(s.swapped for s in self.subsets)

    @property
    def subset(self) -> str | None:
        names = [s.subset for s in self.subsets if s.swapped]
        return "+".join(names) if names else None

    @property
    def swapped_subsets(self) -> tuple[str, ...]:
        return tuple(s.subset for s in self.subsets if s.swapped)

    @property
    def method(self) -> str:
        methods = sorted({s.method for s in self.subsets})
        return methods[0] if len(methods) == 1 else "+".join(methods)

    @property
    def correlations(self) -> dict[str, dict[str, float]]:
        return {s.subset: dict(s.correlations) for s in self.subsets}

    def to_dict(self) -> dict[str, object]:
        return {
            "detected": self.detected,
            "subset": self.subset,
            "corrected": self.corrected,
            "method": self.method,
            "margin": self.margin,
            "correlations": self.correlations,
            "subsets": {
                s.subset: {"n_songs": s.n_songs, "method": s.method, "swapped": s.swapped}
                for s in self.subsets
            },
        }


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def audit_subset(subset: str, static: pd.DataFrame, dynamic: pd.DataFrame | None) -> SubsetAudit:
    """Verdict for one subset. ``static``: song_id + one column per dimension (static
    per-song means, any scale); ``dynamic``: same layout from the dynamic files."""
    if dynamic is not None:
        both = static.merge(dynamic, on="song_id", suffixes=("_static", "_dynamic"))
        if len(both) >= MIN_SONGS:
            corr = {
                correlation_key(s, d): round(
                    _pearson(
                        both[f"{s}_static"].to_numpy(float), both[f"{d}_dynamic"].to_numpy(float)
                    ),
                    4,
                )
                for s in DIMENSIONS
                for d in DIMENSIONS
            }
            swapped = all(
                corr[correlation_key(s, o)] - corr[correlation_key(s, s)] > SWAP_MARGIN
                for s, o in zip(DIMENSIONS, DIMENSIONS[::-1], strict=True)
            )
            return SubsetAudit(subset, len(both), METHOD_DYNAMIC, swapped, corr)
    return SubsetAudit(subset, len(static), METHOD_FALLBACK, subset in FALLBACK_SWAPPED)


def audit_swap(
    static_means: pd.DataFrame, dynamic_means: pd.DataFrame | None, *, corrected: bool
) -> SwapAudit:
    """Audit every year subset present in ``static_means`` (song_id, valence, arousal)."""
    years = year_of(static_means["song_id"].to_numpy())
    audits = tuple(
        audit_subset(name, static_means[years == int(name)], dynamic_means)
        for name in YEAR_BOUNDS
        if (years == int(name)).any()
    )
    return SwapAudit(subsets=audits, corrected=corrected)


def swap_columns(
    frame: pd.DataFrame, song_mask: np.ndarray, pairs: list[tuple[str, str]]
) -> pd.DataFrame:
    """A copy of ``frame`` with each (a, b) column pair exchanged on the masked rows."""
    out = frame.copy()
    for a, b in pairs:
        out.loc[song_mask, [a, b]] = frame.loc[song_mask, [b, a]].to_numpy()
    return out
