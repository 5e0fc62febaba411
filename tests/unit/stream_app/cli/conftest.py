"""Fixtures of the CLI tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def own_settings(tmp_path, monkeypatch):
    """Settings of this test only: its own data folder and a broker address nobody listens on."""
    monkeypatch.setenv("STREAMREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMREC_BROKER", "kafka://127.0.0.1:9")
    from stream_app.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
