"""Where the project and the real datasets are, for tests at any depth."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout, or ``$STREAMREC_SHARED_DATA``."""
    return Path(os.environ.get("STREAMREC_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
