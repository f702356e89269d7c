"""`python -m analysis.audit DIR [OTHER_LABELS_DIR]`: the readout audit's command line (the
work: analysis.compute.readout_audit)."""

from __future__ import annotations

from analysis.compute.readout_audit import main

__all__ = ["main"]
