"""Fixtures shared across the suite: the real data and MusicFM fixtures inside the
repository, and one Ray instance for the whole session (ray.init costs seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def real_deam() -> Path:
    """The real DEAM files: the copy the package bundles (tests/fixtures/deam/sha256.json
    pins it to the files it was made from)."""
    from mer_uq.data.deam_files import BUNDLED_DEAM_DIR

    return BUNDLED_DEAM_DIR


@pytest.fixture(scope="session")
def musicfm_fixtures() -> Path:
    """MusicFM facts and the golden reference (tests/fixtures/README.md says their origin)."""
    return FIXTURES / "musicfm"


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance shared by every test that needs Ray."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
