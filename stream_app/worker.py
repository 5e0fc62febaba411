"""Start a Faust worker of the streamrec app (what ``streamrec worker`` runs)."""

from __future__ import annotations

import logging

from stream_app.settings import get_settings


def run_worker() -> None:
    import faust

    from stream_app import agents, web  # noqa: F401  (registers agents, tasks and views)
    from stream_app import dashboard  # noqa: F401  (the operator dashboard and /api/stats)
    from stream_app.app import app

    s = get_settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    import torch

    # OpenMP threads spin while they wait: on a machine shared with Kafka one thread scores faster
    torch.set_num_threads(s.torch_threads)
    worker = faust.Worker(app, loglevel=s.log_level, redirect_stdouts=False)
    worker.execute_from_commandline()
