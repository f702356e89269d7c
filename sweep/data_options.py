"""The data flags of ``python -m sweep.run`` -> the keys sweep.json records for them.

Which dataset (a DEAM folder, a generic per-rater table with its scale, synthetic data)
and which data axes (raters per song, training fraction, their seed). The record is what
mer_uq.sources rebuilds the dataset from, in the driver and again in the analysis, so the
scale is stored resolved (min, max, neutral), not as the path of a JSON that may move.
Checked here, before anything heavy is imported: a conflicting or malformed flag is one
line and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweep.cli import SweepOptions
from sweep.grid import PlanError, resolve_fractions, resolve_raters


def _resolved(path: Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def data_source_record(options: SweepOptions) -> dict[str, Any]:
    """ratings, scale, songs, synthetic: what replaces --deam (all None: DEAM)."""
    scale_flags = (options.scale, options.scale_min, options.scale_max, options.scale_neutral)
    record: dict[str, Any] = {"ratings": None, "scale": None, "songs": None, "synthetic": None}
    if options.synthetic:
        given = (("--deam", options.deam), ("--ratings", options.ratings),
                 ("--features", options.features), ("--split-file", options.split_file))
        clashing = [flag for flag, value in given if value is not None]
        if clashing:
            raise PlanError(f"--synthetic brings its own songs, split and features; drop "
                            f"{', '.join(clashing)}")
        import inspect

        from mer_uq.synthetic import make_synthetic

        defaults = {name: param.default for name, param in
                    inspect.signature(make_synthetic).parameters.items()}
        # every setting recorded, so a later change of a default cannot change the data
        record["synthetic"] = {**defaults, "n_raters": options.synthetic_raters}
        return record
    if options.ratings is None:
        if options.songs is not None or any(v is not None for v in scale_flags):
            raise PlanError("--songs and --scale* describe a --ratings table; give --ratings")
        return record
    if options.deam is not None:
        raise PlanError("--ratings replaces --deam; give one of them")
    for flag, path in (("--ratings", options.ratings), ("--songs", options.songs),
                       ("--scale", options.scale)):
        if path is not None and not Path(path).is_file():
            raise PlanError(f"{flag} {path}: no such file")
    from mer_uq.data.errors import DeamDataError
    from mer_uq.data.generic import resolve_scale

    try:
        scale = resolve_scale(options.ratings, options.scale, options.scale_min,
                              options.scale_max, options.scale_neutral)
    except DeamDataError as err:
        raise PlanError(str(err)) from err
    record.update(ratings=_resolved(options.ratings), scale=scale.to_dict(),
                  songs=_resolved(options.songs))
    return record


def data_axes_record(options: SweepOptions) -> dict[str, Any]:
    """raters, train_fractions (None: the axis is not used), subsample_seed."""
    if options.search and (options.raters is not None or options.train_fraction is not None):
        raise PlanError("--raters and --train-fraction are axes of the seed sweep; run "
                        "--search without them (it tunes on all the data)")
    return {"raters": resolve_raters(options.raters),
            "train_fractions": resolve_fractions(options.train_fraction),
            "subsample_seed": int(options.subsample_seed)}
