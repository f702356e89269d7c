"""Fixtures shared across the suite: where the real shared data lives, and one Ray
instance for the whole session (ray.init costs seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MER_UQ_SHARED", REPO_ROOT.parent / "shared"))


def _shared_path(*parts: str) -> Path:
    """A path under ../shared; skipped on a user's fresh clone that lacks it, but a hard
    failure in CI, where shared/ always sits beside the checkout."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI expects shared/ beside the checkout")
        pytest.skip(f"{path} not present (shared data lives beside the checkout)")
    return path


@pytest.fixture(scope="session")
def shared_deam() -> Path:
    return _shared_path("deam")


@pytest.fixture(scope="session")
def shared_musicfm() -> Path:
    return _shared_path("musicfm")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance shared by every test that needs Ray."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
