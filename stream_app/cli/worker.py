"""``streamrec worker``: one Faust stream worker (the worker package does the rest)."""

from __future__ import annotations

import sys


def worker() -> None:
    """Run a stream worker (several may run in one group; give each its own STREAMREC_DATA_DIR and port)."""
    from stream_app.worker.run import run_worker

    sys.argv = [sys.argv[0]]  # Faust parses sys.argv itself; streamrec's arguments are not its own
    run_worker()
