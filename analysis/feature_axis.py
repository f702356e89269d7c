"""`python -m analysis.feature_axis DIR_A DIR_B ... --out OUT`: the feature-axis command line
(the work: analysis.compute.feature_axis)."""

from __future__ import annotations

import sys

from analysis.compute.feature_axis import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
