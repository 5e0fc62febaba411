"""Shared test fixtures: where the real datasets live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("STREAMREC_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real datasets not found at {d} (set STREAMREC_SHARED_DATA)")
    return d


def pytest_addoption(parser):
    parser.addoption("--reliability-full", action="store_true", default=False,
                     help="run the reliability suite at full size (50 crashes, 10-minute soak, 60 s burst)")
