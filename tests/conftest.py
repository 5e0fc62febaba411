"""Shared test fixtures: where the real datasets live."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import ROOT, shared_data_dir

__all__ = ["ROOT", "shared_data_dir"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real datasets not found at {d} (set STREAMREC_SHARED_DATA)")
    return d


def pytest_addoption(parser):
    parser.addoption("--reliability-full", action="store_true", default=False,
                     help="run the reliability suite at full size (50 crashes, 10-minute soak, 60 s burst)")
