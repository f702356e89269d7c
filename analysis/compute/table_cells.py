"""Table 2 (predicted vs empirical mean) and Table 3 (predicted vs empirical SD).

Every cell is a point score of mer_uq.scores (the functions and names a trial records)
between one row's prediction and the empirical per-song statistic of the test songs:
mean +/- SD over the row's seeds, or a single value for a combined predictor. Each cell
also gets a bootstrap interval over test songs; the bootstrap draws are kept
(``TableResult.boot``) so that any two rows can be compared on the same resampled songs
(analysis.compute.paired_tests). The bootstrap is the same scores in batched form, one draw per
resample equal to the score of that resample.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.compute.baselines import BASELINE_CONSTANT_SD, BASELINE_SD_FROM_MEAN
from analysis.compute.bootstrap import percentile_interval
from analysis.compute.rows import PredictionRow, table_group, table_label, table_order
from mer_uq import schema
from mer_uq.scores import MEAN, PEARSON, POINT_SCORES, R2, SD, SPEARMAN

TABLE_TARGETS: dict[str, str] = {"table2": MEAN, "table3": SD}
TABLE_TITLES: dict[str, str] = {
    "table2": "Table 2: predicted vs empirical MEAN rating (test split)",
    "table3": "Table 3: predicted vs empirical inter-rater SD (test split)",
}
# Baselines that differ from the ridge probe only in their SD add nothing to Table 2.
_SD_ONLY_BASELINES = (BASELINE_CONSTANT_SD, BASELINE_SD_FROM_MEAN)


def empirical_targets(songs: pd.DataFrame, song_ids: np.ndarray) -> dict[tuple[str, str],
                                                                         np.ndarray]:
    """(target, dimension) -> the empirical per-song mean or SD, in ``song_ids`` order."""
    by_song = songs.set_index("song_id").loc[np.asarray(song_ids, dtype=np.int64)]
    out = {}
    for d in schema.DIMENSIONS:
        out[(MEAN, d)] = by_song[schema.TARGET_MEAN[d]].to_numpy(dtype=np.float64)
        out[(SD, d)] = by_song[schema.TARGET_SD[d]].to_numpy(dtype=np.float64)
    return out


def rows_for_target(rows: list[PredictionRow], target: str) -> list[PredictionRow]:
    """The rows a table prints: Table 3 needs a predicted SD, Table 2 skips baselines whose
    mean is the ridge probe's again."""
    if target == SD:
        return [r for r in rows if r.has_sigma]
    return [r for r in rows if r.key not in _SD_ONLY_BASELINES]


def predicted(row: PredictionRow, target: str, dim: str) -> np.ndarray:
    """[n_members, n_songs]: the row's predicted mean, or its predicted SD."""
    return row.mu[dim] if target == MEAN else row.sigma[dim]


def member_scores(row: PredictionRow, target: str, dim: str, y_true: np.ndarray,
                  metric: str) -> np.ndarray:
    """The metric of each member (seed) of a row: the values behind mean +/- SD."""
    fn = POINT_SCORES[metric]
    return np.array([fn(y_true, pred) for pred in predicted(row, target, dim)])


class _ResampledTruth:
    """The target side of a cell on every resample, [n_boot, n_songs], with the parts of
    Pearson's r that do not depend on the prediction computed once for all members."""

    def __init__(self, values: np.ndarray, constant: np.ndarray | None = None) -> None:
        self.values = values
        self.centred = values - values.mean(axis=-1, keepdims=True)
        self.sum_sq = np.sum(self.centred * self.centred, axis=-1)
        self.constant = (np.all(values == values[..., :1], axis=-1) if constant is None
                         else constant)

    def correlation(self, y: np.ndarray, work: np.ndarray | None = None,
                    y_constant: np.ndarray | None = None) -> np.ndarray:
        """mer_uq.metrics' Pearson r of every resample (row) against ``y`` [n_boot,
        n_songs]: the same formula term for term, NaN where either side is constant.
        ``y`` is centred in place and ``work`` (its shape) is scratch: the same operations
        on the same numbers as with temporaries, without allocating any. ``y_constant``:
        which rows of ``y`` are constant, when the caller knows (``_moment_draws``)."""
        if y_constant is None:
            y_constant = np.all(y == y[..., :1], axis=-1)
        constant = self.constant | y_constant
        yc = np.subtract(y, y.mean(axis=-1, keepdims=True), out=y)
        work = np.multiply(yc, yc, out=work)
        denom = np.sqrt(self.sum_sq * np.sum(work, axis=-1))
        np.multiply(self.centred, yc, out=work)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.clip(np.sum(work, axis=-1) / denom, -1.0, 1.0)
        return np.where(constant | (denom == 0.0), np.nan, r)

    def r2(self, y_pred: np.ndarray, work: np.ndarray | None = None) -> np.ndarray:
        """mer_uq.metrics' R² of every resample (NaN where the target is constant);
        ``work`` as in ``correlation`` (x * x is x ** 2's exact square)."""
        residual = np.subtract(self.values, y_pred, out=work)
        ss_res = np.sum(np.multiply(residual, residual, out=residual), axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = 1.0 - ss_res / self.sum_sq
        return np.where(self.sum_sq == 0.0, np.nan, r2)


# How many resample-by-song entries one chunk of the bootstrap holds: ~2^18 keeps a
# chunk's few integer and float arrays in the core's cache (the work streams through
# them ~15 times per member), and bounds the bootstrap's memory whatever the song count.
CHUNK_ENTRIES = 2**18


def resample_chunks(n_boot: int, n_items: int, entries: int = CHUNK_ENTRIES
                    ) -> list[slice]:
    """Consecutive blocks of resamples of about ``entries`` resample-by-item entries each
    (at least one resample per block). Every draw is computed from its own resample
    only, so the blocks change no number, only the memory and the cache traffic."""
    rows = max(1, entries // max(n_items, 1))
    return [slice(start, min(start + rows, n_boot)) for start in range(0, n_boot, rows)]


def resample_counts(indices: np.ndarray, n_items: int) -> np.ndarray:
    """[n_boot, n_items]: how often each item was drawn in each resample."""
    n_boot = indices.shape[0]
    flat = (indices + np.arange(n_boot)[:, None] * n_items).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_items).reshape(n_boot, n_items)
    # int32 halves the memory the rank sums stream through, where their products
    # (count x doubled rank deviation^2 <= 4 n^3) cannot overflow it
    return counts.astype(np.int32) if 4 * n_items**3 < 2**31 else counts


@dataclass(frozen=True)
class _RankPlan:
    """Where each value of one vector ranks in every resample, without sorting any
    resample: its sort order and, where values tie, the first and last position of each
    position's run, worked out once.

    A resample only repeats the original values, so an item's average rank (scipy's
    rankdata 'average': half-integers) is the mean of (drawn values below its value) + 1
    and (drawn values up to its value): one cumulative sum of the counts in value order.
    Items not drawn get the rank their value would have; they carry weight 0 wherever it
    is used."""

    order: np.ndarray
    run_first: np.ndarray | None
    run_last: np.ndarray | None

    @classmethod
    def of(cls, values: np.ndarray) -> _RankPlan:
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        ties = ordered[1:] == ordered[:-1]
        if not ties.any():
            return cls(order, None, None)
        ends = np.flatnonzero(np.r_[~ties, True])
        starts = np.r_[0, ends[:-1] + 1]
        run = np.repeat(np.arange(ends.size), np.diff(np.r_[-1, ends]))
        return cls(order, starts[run], ends[run])

    def deviations(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(drawn, deviation), both in this vector's sorted order: ``drawn[b, p]`` how often
        item ``order[p]`` was drawn in resample b, ``deviation[b, p]`` = 2 x (its average
        rank - (n + 1) / 2) among the n values drawn, an integer."""
        n = counts.shape[1]
        drawn = counts[:, self.order]
        upto = np.cumsum(drawn, axis=1, dtype=drawn.dtype)
        if self.run_first is None:  # below = upto - drawn: 2 upto - drawn - n
            dev = upto * 2
            dev -= drawn
        else:  # every item of a run of equal values takes the run's counts
            dev = upto[:, self.run_last]
            dev += upto[:, self.run_first]
            dev -= drawn[:, self.run_first]
        dev -= n
        return drawn, dev


def _dense_ranks(plan: _RankPlan, values: np.ndarray) -> np.ndarray:
    """0, 1, 2, ...: each value's place among the distinct values (ties share one)."""
    ordered = values[plan.order]
    dense = np.empty(values.size, dtype=np.int64)
    dense[plan.order] = np.cumsum(np.r_[False, ordered[1:] != ordered[:-1]])
    return dense


def _rank_keys(plan: _RankPlan, values: np.ndarray) -> tuple[bytes, bytes] | None:
    """Digests of a vector's rank structure and of its reverse (the structure of any
    strictly decreasing function of it); None for a vector with a NaN or an infinity,
    whose draws are never shared."""
    if not np.all(np.isfinite(values)):
        return None
    dense = _dense_ranks(plan, values)
    return (hashlib.sha256(dense.tobytes()).digest(),
            hashlib.sha256((dense.max() - dense).tobytes()).digest())


def _spearman_draws(y_true: np.ndarray, members: np.ndarray, indices: np.ndarray,
                    entries: int = CHUNK_ENTRIES,
                    known: dict[bytes, np.ndarray] | None = None) -> list[np.ndarray]:
    """mer_uq.metrics' Spearman rho of every resample, per member: Pearson's r of the
    average ranks, summed over items weighted by how often each was drawn.

    Every term is exact: the ranks' mean over n draws is exactly (n + 1) / 2, and twice
    a rank's deviation from it is an integer, so the three sums are exact integers (in
    any order) and r = S_xy / sqrt(S_xx S_yy) is the metric's value to the last bit (the
    factor 4 of the doubled deviations cancels exactly: powers of two). Being exact, the
    sums are the same whatever blocks of resamples they are taken over.

    Being exact, they also depend on a member only through its rank structure (which
    items tie, which come first), never on its values: ``known`` (draws by the digest of
    a member's rank structure, for this ``y_true`` and ``indices``) gives every member
    whose ranks were seen before its earlier draws, and a member whose ranks are exactly
    the reverse of a seen one (a strictly decreasing readout: 1/sigma, -log sigma) the
    negated draws: its doubled deviations are the negated integers, so S_xy is negated,
    S_yy the same, and r = -S_xy / sqrt(S_xx S_yy) is the negated float to the last bit.
    """
    n, n_boot = y_true.size, indices.shape[0]
    plans = [_RankPlan.of(pred) for pred in members]
    keys = [_rank_keys(plan, pred) if known is not None else None
            for plan, pred in zip(plans, members, strict=True)]
    draws: list[np.ndarray | None] = [None] * len(plans)
    for m, key in enumerate(keys):
        if key is not None and key[0] in known:
            draws[m] = known[key[0]]
        elif key is not None and key[1] in known:
            draws[m] = -known[key[1]]
    todo = [m for m, d in enumerate(draws) if d is None]
    if todo:
        truth_plan = _RankPlan.of(y_true)
        sum_xx = np.empty(n_boot, dtype=np.int64)
        sum_yy = np.empty((len(todo), n_boot), dtype=np.int64)
        sum_xy = np.empty((len(todo), n_boot), dtype=np.int64)
        for block in resample_chunks(n_boot, n, entries):
            counts = resample_counts(indices[block], n)
            drawn, truth = truth_plan.deviations(counts)
            weighted = drawn * truth
            sum_xx[block] = np.sum(weighted * truth, axis=-1, dtype=np.int64)
            weighted_by_item = np.empty_like(weighted)
            weighted_by_item[:, truth_plan.order] = weighted  # counts x truth deviation
            for i, m in enumerate(todo):
                plan = plans[m]
                drawn, dev = plan.deviations(counts)
                drawn *= dev
                sum_xy[i, block] = np.sum(weighted_by_item[:, plan.order] * dev, axis=-1,
                                          dtype=np.int64)
                drawn *= dev
                sum_yy[i, block] = np.sum(drawn, axis=-1, dtype=np.int64)
        for i, m in enumerate(todo):
            denom = np.sqrt(sum_xx.astype(np.float64) * sum_yy[i].astype(np.float64))
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.clip(sum_xy[i].astype(np.float64) / denom, -1.0, 1.0)
            draws[m] = np.where(denom == 0.0, np.nan, r)  # exact: 0 only when constant
            if keys[m] is not None:
                known[keys[m][0]] = draws[m]
    return draws


def _moment_draws(y_true: np.ndarray, members: np.ndarray, indices: np.ndarray,
                  metrics: tuple[str, ...], entries: int = CHUNK_ENTRIES
                  ) -> dict[str, list[np.ndarray]]:
    """Pearson's r and/or R^2 of every resample, per member, in blocks of resamples: each
    draw is a reduction over its own resample's row, the same sums in the same order
    whatever the block, so blocks change no bit. Both metrics from one gather of each
    member's resampled predictions (R^2 first: Pearson centres them in place)."""
    n_boot = indices.shape[0]
    out = {metric: np.empty((len(members), n_boot)) for metric in metrics}
    # A member whose values are all distinct (no tie, no NaN) is constant on a resample
    # exactly where the resample drew one song only: that test is made once per block.
    def all_distinct(values: np.ndarray) -> bool:
        ordered = np.sort(values)
        return bool(np.all(ordered[1:] != ordered[:-1]) and not np.isnan(ordered[-1]))

    untied = [all_distinct(pred) for pred in members] if PEARSON in out else []
    truth_untied = all_distinct(y_true)
    for block in resample_chunks(n_boot, y_true.size, entries):
        rows = indices[block]
        one_song = (np.all(rows == rows[:, :1], axis=-1) if any(untied) or truth_untied
                    else None)
        truth = _ResampledTruth(np.take(y_true, rows), one_song if truth_untied else None)
        work = np.empty(rows.shape)
        for m, pred in enumerate(members):
            resampled = np.take(pred, rows)
            if R2 in out:
                out[R2][m, block] = truth.r2(resampled, work)
            if PEARSON in out:
                out[PEARSON][m, block] = truth.correlation(resampled, work,
                                                           one_song if untied[m] else None)
    return {metric: list(draws) for metric, draws in out.items()}


class SharedDraws:
    """Bootstrap draws worked out once for one index matrix and handed to every cell that
    asks for the same thing again: a cell's draws are a deterministic function of its
    target vector, its members' arrays and the indices, so two cells with the same bytes
    get the same draws (a conformal twin's Table 2 is its original's; the readout audit's
    sigma readout and its rows without a spread head are the report's own Table 3 cells),
    and Spearman draws are shared member by member through the rank structure
    (``_spearman_draws``: a twin's SD scaled by a positive factor, a monotone readout).
    Nothing approximate: a cell is shared only where its draws are the same bits."""

    def __init__(self, indices: np.ndarray) -> None:
        self.indices = indices
        self.equal: list[weakref.ref[np.ndarray]] = []
        self.cells: dict[tuple[str, bytes, bytes], np.ndarray] = {}
        self.ranks: dict[bytes, dict[bytes, np.ndarray]] = {}

    def serves(self, indices: np.ndarray) -> bool:
        """Whether these draws were made on ``indices`` (the same matrix, or an equal one:
        compared once, then recognised by a weak reference, which neither keeps a large
        matrix alive nor mistakes a new array at a freed one's address for it)."""
        if indices is self.indices or any(ref() is indices for ref in self.equal):
            return True
        if indices.shape == self.indices.shape and np.array_equal(indices, self.indices):
            self.equal.append(weakref.ref(indices))
            return True
        return False


def _digest(values: np.ndarray) -> bytes:
    """A digest of an array's shape and float64 bytes."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    return hashlib.sha256(repr(values.shape).encode() + values.tobytes()).digest()


def bootstrap_cell(row: PredictionRow, target: str, dim: str, y_true: np.ndarray,
                   metric: str, indices: np.ndarray, entries: int = CHUNK_ENTRIES,
                   shared: SharedDraws | None = None) -> np.ndarray:
    """The cell's statistic (mean over members) on every resample: [n_boot].

    All resamples of a member at once, as [resamples, n_songs] arrays (one call per
    resample and member was 99 % of the report's time), taken in blocks of resamples
    (``resample_chunks``) so that memory stays bounded and the arrays stay in cache
    whatever the number of songs. A 2-D reduction sums each resample in the same order
    as mer_uq.metrics does on one vector, so every draw EQUALS the metric of that
    resample (a 3-D [members, resamples, songs] reduction groups the sums differently,
    ~1e-16 off). Spearman's rho is Pearson's r of the average ranks (mer_uq's
    definition), from counts of draws rather than a sort per resample
    (``_spearman_draws``). ``shared`` (made for these indices) returns draws already
    worked out for the same arrays and keeps the new ones.
    """
    members = predicted(row, target, dim)
    if shared is not None and not shared.serves(indices):
        shared = None
    key = truth_key = None
    if shared is not None:
        truth_key = _digest(y_true)
        key = (metric, truth_key, _digest(members))
        if key in shared.cells:
            return shared.cells[key]
    if metric == SPEARMAN:
        known = None if shared is None else shared.ranks.setdefault(truth_key, {})
        draws = _spearman_draws(y_true, members, indices, entries, known)
    elif metric in (PEARSON, R2):
        # with a memo, both moment metrics at once: the other cell's draws cost little more
        metrics = (PEARSON, R2) if shared is not None else (metric,)
        moments = _moment_draws(y_true, members, indices, metrics, entries)
        if shared is not None:
            for other in metrics:
                shared.cells[(other, *key[1:])] = np.mean(moments[other], axis=0)
            return shared.cells[key]
        draws = moments[metric]
    else:
        raise ValueError(f"no batched form of metric {metric!r}")
    cell = np.mean(draws, axis=0)
    if shared is not None:
        shared.cells[key] = cell
    return cell


@dataclass
class TableResult:
    """Long-format cells of both tables, per-seed values, and the bootstrap draws."""

    cells: pd.DataFrame
    per_seed: pd.DataFrame
    boot: dict[tuple[str, str, str, str], np.ndarray] = field(default_factory=dict)
    # the draws, for other cells on the same indices (the readout audit's)
    shared: SharedDraws | None = None


def compute_tables(rows: list[PredictionRow], targets: dict[tuple[str, str], np.ndarray],
                   indices: np.ndarray | None) -> TableResult:
    """Every cell of Tables 2 and 3. ``indices`` is the bootstrap index matrix shared by all
    rows (None: no intervals)."""
    cells, per_seed = [], []
    boot: dict[tuple[str, str, str, str], np.ndarray] = {}
    # Rows whose members predict the very same arrays (or, for Spearman, the same ranks)
    # share their draws: a conformal twin (conformal_rows) keeps its original's mu, so
    # its Table 2 draws are its original's, and its SD is its original's times a positive
    # factor, so its Table 3 Spearman draws usually are too (SharedDraws).
    shared = SharedDraws(indices) if indices is not None else None
    for table, target in TABLE_TARGETS.items():
        for row in table_order(rows_for_target(rows, target), table):
            for dim in schema.DIMENSIONS:
                y_true = targets[(target, dim)]
                for metric in POINT_SCORES:
                    values = member_scores(row, target, dim, y_true, metric)
                    finite = values[np.isfinite(values)]
                    mean = float(finite.mean()) if finite.size else float("nan")
                    sd = float(finite.std(ddof=1)) if finite.size >= 2 else float("nan")
                    low = high = float("nan")
                    if indices is not None:
                        draws = bootstrap_cell(row, target, dim, y_true, metric, indices,
                                               shared=shared)
                        boot[(table, row.key, dim, metric)] = draws
                        low, high = percentile_interval(draws)
                    cells.append({
                        "table": table, "target": target, "row_key": row.key,
                        "row_label": table_label(row, table),
                        "group": table_group(row, table), "single": row.single,
                        "n_seeds": len(row.seeds), "dimension": dim, "metric": metric,
                        "value": mean, "sd_over_seeds": sd if not row.single else float("nan"),
                        "ci_low": low, "ci_high": high,
                    })
                    per_seed += [
                        {"table": table, "row_key": row.key, "dimension": dim,
                         "metric": metric, "seed": seed, "value": float(v)}
                        for seed, v in zip(row.seeds if not row.single else (-1,), values,
                                           strict=True)
                    ]
    return TableResult(pd.DataFrame(cells), pd.DataFrame(per_seed), boot, shared)
