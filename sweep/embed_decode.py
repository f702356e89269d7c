"""The decode step of ``sweep.embed``, in a module of its own.

Ray ships ``decode_row`` to its worker processes by module reference; keeping this module
free of torch means a decode worker starts in a fraction of a second instead of importing
the whole model stack.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mer_uq.audio import load_audio

# Ray CPU accounting for one decode task: decode + resample of a 45 s mp3 takes ~0.2 s of one
# core, so tasks are booked lightly to leave room beside the actors (booking a whole CPU for
# both on a 2-CPU machine starved the decode tasks and hung the pipeline).
DECODE_CPUS = 0.5
# Memory booked per decode task (a 45 s 44.1 kHz stereo file decodes to ~16 MB, plus the
# resampled copy and codec buffers). Booking it also makes the decode step's Ray arguments
# differ from the actors', which keeps Ray Data from fusing decoding INTO the model actors:
# fused, every actor would decode its own songs serially between model calls.
DECODE_MEMORY_BYTES = 256 * 1024**2


def decode_row(row: dict[str, Any], *, sample_rate: int, seconds: float) -> dict[str, Any]:
    """One file -> {"song_id", "path", "audio" [2, n] float32, "error"}; never raises."""
    n_samples = round(sample_rate * seconds)
    try:
        audio = load_audio(row["path"], sample_rate=sample_rate, seconds=seconds)
        error = ""
    except Exception as err:  # a corrupt file must not stop the other songs
        audio = np.zeros((2, n_samples), dtype=np.float32)
        error = f"{type(err).__name__}: {err}"
    return {"song_id": row["song_id"], "path": row["path"], "audio": audio, "error": error}
