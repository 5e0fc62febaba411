"""The reliability suite: crashes, a broker restart, bad input, bad models, soak and burst, broker failover.

Each scenario is a function that runs against a real broker and real worker processes and
returns a dict of figures; :func:`run_suite` runs the selected ones and :func:`render` writes
them as the Markdown report (``docs/RELIABILITY.md``) with the command that produced it.

>>> SuiteConfig(quick=True).resolved().crashes, SuiteConfig().crashes
(3, 50)
>>> "| lost updates | 0 |" in render({"crash": {"lost_updates": 0}}, SuiteConfig(), "streamrec reliability")
True
"""

from __future__ import annotations

import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from stream_app.kafka import KafkaTarget
from stream_app.ops.reliability.badmodels import bad_models_scenario
from stream_app.ops.reliability.catalogue import catalogue_scenario
from stream_app.ops.reliability.crash import broker_restart_scenario, crash_scenario
from stream_app.ops.reliability.failover import failover_scenario
from stream_app.ops.reliability.fuzz import fuzz_scenario
from stream_app.ops.reliability.report import render
from stream_app.ops.reliability.soak import load_scenario

SCENARIOS = ("crash", "broker", "fuzz", "models", "soak", "failover", "catalogue")

__all__ = ["SCENARIOS", "SuiteConfig", "bad_models_scenario", "broker_restart_scenario", "catalogue_scenario",
           "crash_scenario",
           "failover_scenario", "fuzz_scenario", "load_scenario", "render", "run_suite"]


@dataclass(frozen=True)
class SuiteConfig:
    """Sizes of one suite run; the defaults are the full run, ``quick`` the short one."""

    crashes: int = 50
    soak_s: float = 600.0
    burst_s: float = 60.0
    crash_rate: float = 200.0
    fuzz_events: int = 20_000
    fuzz_share: float = 0.05
    capacity_events: int = 20_000
    membership: str = "dynamic"
    """Consumer group membership of the crashed worker: dynamic, or static (STREAMREC_INSTANCE_ID)."""
    failover_down_s: float = 30.0
    """How long the killed broker of the failover scenario stays down."""
    catalogue_events: int = 2_200_000
    """Events of the bounded-catalogue scenario (nine in ten for an item never seen before)."""
    catalogue_max_items: int = 200_000
    """``STREAMREC_MAX_ITEMS`` of its worker."""
    quick: bool = False

    def resolved(self) -> SuiteConfig:
        """With ``quick``, the short sizes (explicitly smaller values are kept)."""
        if not self.quick:
            return self
        return replace(self, crashes=min(self.crashes, 3), soak_s=min(self.soak_s, 20.0),
                       burst_s=min(self.burst_s, 10.0), fuzz_events=min(self.fuzz_events, 4000),
                       capacity_events=min(self.capacity_events, 5000),
                       failover_down_s=min(self.failover_down_s, 12.0),
                       catalogue_events=min(self.catalogue_events, 30_000),
                       catalogue_max_items=min(self.catalogue_max_items, 5_000))


def run_suite(bootstrap: KafkaTarget, kafka_cache_dir: Path, cfg: SuiteConfig, only: tuple[str, ...] = SCENARIOS,
              work_dir: Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the scenarios in ``only`` and return ``{scenario: figures}`` (plus ``meta``)."""
    cfg = cfg.resolved()
    root = Path(tempfile.mkdtemp(prefix="streamrec-reliability-", dir=work_dir))
    out: dict[str, Any] = {"meta": {"config": asdict(cfg), "python": platform.python_version(),
                          "machine": f"{platform.machine()}, {_cpus()} CPUs", "started": time.strftime("%Y-%m-%d %H:%M")}}
    steps = {
        "crash": lambda: crash_scenario(bootstrap, root, cfg.crashes, cfg.crash_rate, log=log,
                                        membership=cfg.membership),
        "broker": lambda: broker_restart_scenario(kafka_cache_dir, root, cfg.crash_rate, log=log),
        "fuzz": lambda: fuzz_scenario(bootstrap, root, cfg.fuzz_events, cfg.fuzz_share, log=log),
        "models": lambda: bad_models_scenario(root, log=log),
        "soak": lambda: load_scenario(bootstrap, root, cfg.soak_s, cfg.burst_s, cfg.capacity_events, log=log),
        "failover": lambda: failover_scenario(kafka_cache_dir, root, cfg.crash_rate, down_s=cfg.failover_down_s,
                                              before_s=3.0 if cfg.quick else 10.0, after_s=5.0 if cfg.quick else 20.0,
                                              log=log),
        "catalogue": lambda: catalogue_scenario(bootstrap, root, cfg.catalogue_events, cfg.catalogue_max_items,
                                                log=log),
    }
    for name in only:
        t0 = time.monotonic()
        log(f"== {name}")
        try:
            out[name] = steps[name]()
        except Exception as exc:  # a scenario that cannot finish is a finding, not the end of the report
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        out[name]["scenario_seconds"] = round(time.monotonic() - t0, 1)
    return out


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
