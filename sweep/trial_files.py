"""One trial's predictions as a Parquet file that describes itself.

The schema metadata key ``mer_uq.trial`` carries the trial's JSON record (training key,
seeds, configuration, metrics, the node that ran it), so a trial file read on its own, e.g.
by the analysis or by someone debugging one odd seed, needs no other state.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mer_uq.data.atomic import write_atomically

TRIAL_METADATA_KEY = b"mer_uq.trial"
PREDICTIONS_FILE = "predictions.parquet"


def write_trial_parquet(path: Path, predictions: pd.DataFrame, record: dict[str, Any]) -> Path:
    """Write predictions plus ``record`` in the schema metadata, atomically."""
    table = pa.Table.from_pandas(predictions, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[TRIAL_METADATA_KEY] = json.dumps(record, default=str).encode()
    table = table.replace_schema_metadata(metadata)
    return write_atomically(path, lambda tmp: pq.write_table(table, tmp))


def read_trial_record(path: Path) -> dict[str, Any]:
    """The ``mer_uq.trial`` record of a trial file."""
    metadata = pq.read_schema(path).metadata or {}
    if TRIAL_METADATA_KEY not in metadata:
        raise ValueError(f"{path} has no {TRIAL_METADATA_KEY.decode()} metadata")
    return json.loads(metadata[TRIAL_METADATA_KEY])


def publish_trial_file(source: Path, target: Path) -> Path:
    """Copy a finished trial's file into the sweep folder atomically (never half a file,
    and a second copy of the same trial replaces the first instead of duplicating it)."""
    return write_atomically(target, lambda tmp: shutil.copyfile(source, tmp))


def trial_file_problem(path: Path, expected: dict[str, Any]) -> str | None:
    """Why the trial file at ``path`` cannot count as finished, or None when it can.

    A finished trial is a file that reads back whole (every column of every row group,
    not only the footer) and whose record matches the plan: each key of ``expected``
    (training, seeds, model, train, mc_passes) equal in the record. This is what
    ``--resume`` trusts; a truncated copy or a file of another plan is rerun instead."""
    try:
        pq.read_table(path)
        record = read_trial_record(path)
    except (OSError, ValueError, pa.ArrowException) as err:
        return f"unreadable ({str(err).splitlines()[0][:120]})"
    differing = [k for k, v in expected.items() if _comparable(record.get(k)) != _comparable(v)]
    return f"record differs from the plan in {', '.join(differing)}" if differing else None


def _comparable(value: Any) -> Any:
    """JSON round trip, so tuples and lists (or ints and floats in JSON) compare equal."""
    return json.loads(json.dumps(value, default=str))
