"""Where a worker keeps its online models between runs (a local file, written atomically)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream_app.core.pipeline import Pipeline

log = logging.getLogger(__name__)


class CheckpointStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, data: bytes) -> None:
        """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def restore_into(self, pipeline: Pipeline) -> bool:
        """Load the last checkpoint into ``pipeline``; a damaged file is logged and set aside."""
        data = self.read()
        if data is None:
            return False
        try:
            pipeline.restore(data)
        except Exception as exc:
            bad = self.path.with_suffix(".corrupt")
            os.replace(self.path, bad)
            log.error("online model checkpoint %s is unreadable (%s); moved to %s, starting fresh",
                      self.path, exc, bad)
            return False
        log.info("online models restored from %s (offsets %s)", self.path, pipeline.ranker_offsets)
        return True
