"""Scenario 4: damaged and hostile model artifacts are refused while the old model keeps serving.

A good model is promoted and put in service through the worker's own :class:`ModelWatcher`
(the code every worker runs); then the registry's ``CURRENT`` pointer is aimed, one at a time,
at each bad artifact, as a damaged copy of a registry or an attacker with write access to it
would. Each must be refused (by ``Registry.promote`` and by the watcher), the pickle payload's
marker file must never appear, and the good model must still rank after every attempt.

>>> sorted(CASES)[:3]
['bit_flipped', 'hash_mismatch', 'nan_weights']
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import pickle
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.deep.registry import Registry
    from models.deep.train import TrainResult
    from stream_app.core.pipeline import Pipeline

CASES = ("truncated", "bit_flipped", "hash_mismatch", "wrong_shape", "nan_weights", "traversal_name",
         "symlink_version", "symlink_weights", "pickle_payload")


class _Marker:
    """Unpickling this writes a marker file: proof that an artifact was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _train_tiny(seed: int) -> TrainResult:
    from models.base import Interaction
    from models.deep.train import TrainConfig, train

    rng = random.Random(seed)
    log = [Interaction(f"u-{rng.randrange(60)}", f"i-{int(200 * rng.random() ** 2)}", "click", 1.7e9 + i)
           for i in range(3000)]
    cfg = TrainConfig(dim=16, layers=1, heads=1, max_len=20, epochs=1, negatives=0, max_eval_users=200, seed=seed)
    return train(log, cfg, device="cpu", progress=False)


def _clone(reg: Registry, src: str, name: str, weights: bytes | None = None,
           manifest_edit: Callable[[dict[str, Any]], None] | None = None, fix_hash: bool = True) -> Path:
    """Copy version ``src`` as ``name``, optionally with other weights and manifest fields."""
    dst = reg.versions / name
    shutil.copytree(reg.versions / src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["version"] = name
    if weights is not None:
        (dst / "weights.safetensors").write_bytes(weights)
        if fix_hash:
            manifest["weights_sha256"] = _sha(weights)
    if manifest_edit:
        manifest_edit(manifest)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def _build(reg: Registry, good: str, case: str, marker: Path, outside: Path) -> str:
    """Create the bad artifact of ``case`` next to ``good``; return the name CURRENT will point at."""
    import torch
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    raw = (reg.versions / good / "weights.safetensors").read_bytes()
    name = f"bad-{case.replace('_', '-')}"
    if case == "truncated":
        _clone(reg, good, name, raw[: len(raw) // 2])
    elif case == "bit_flipped":
        flipped = bytearray(raw)
        flipped[len(raw) * 2 // 3] ^= 0x10
        _clone(reg, good, name, bytes(flipped), fix_hash=False)
    elif case == "hash_mismatch":
        _clone(reg, good, name, manifest_edit=lambda m: m.update(weights_sha256="0" * 64))
    elif case == "wrong_shape":
        tensors = st_load(raw)
        key = next(k for k, t in tensors.items() if t.ndim == 2)
        t = tensors[key]
        tensors[key] = torch.zeros(t.shape[0] + 3, t.shape[1], dtype=t.dtype)
        _clone(reg, good, name, st_save(tensors))
    elif case == "nan_weights":
        tensors = st_load(raw)
        key = next(k for k, t in tensors.items() if t.is_floating_point())
        tensors[key] = tensors[key].clone()
        tensors[key].view(-1)[0] = float("nan")
        _clone(reg, good, name, st_save(tensors))
    elif case == "traversal_name":
        shutil.copytree(reg.versions / good, outside / "escaped")
        return "../../" + outside.name + "/escaped"
    elif case == "symlink_version":
        target = outside / "linked"
        shutil.copytree(reg.versions / good, target)
        manifest = json.loads((target / "manifest.json").read_text())
        manifest["version"] = name
        (target / "manifest.json").write_text(json.dumps(manifest))
        os.symlink(target, reg.versions / name)
    elif case == "symlink_weights":
        dst = _clone(reg, good, name)
        (outside / "weights.safetensors").write_bytes(raw)
        (dst / "weights.safetensors").unlink()
        os.symlink(outside / "weights.safetensors", dst / "weights.safetensors")
    elif case == "pickle_payload":
        payload = pickle.dumps({"weights": _Marker(str(marker))})
        dst = _clone(reg, good, name, payload)
        (dst / "model.pkl").write_bytes(payload)
        (dst / "weights.pt").write_bytes(payload)
    else:
        raise ValueError(f"unknown case {case!r}")
    return name


def _serves(pipeline: Pipeline) -> bool:
    """The model in service still ranks: finite scores for a user with history."""
    from models.base import UserContext

    deep: Any = pipeline.ranker.deep  # the deep model's own methods, beyond the Recommender protocol
    if deep is None:
        return False
    user = UserContext("probe", recent_items=tuple(deep.vocab_items()[:3]))
    ranked = deep.rank_many([user], 10, [frozenset()])[0]
    return bool(ranked) and all(math.isfinite(float(score)) for _, score in ranked)


def bad_models_scenario(root: Path | None = None, seed: int = 0,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every case of :data:`CASES`; return per-case outcomes and the totals."""
    from models.deep.registry import ArtifactError, Registry
    from stream_app.core.pipeline import Pipeline
    from stream_app.worker.swap import ModelWatcher

    base = Path(tempfile.mkdtemp(prefix="streamrec-badmodels-", dir=root))
    reg_root = base / "registry"
    outside = base / "outside"
    outside.mkdir(parents=True)
    marker = base / "UNPICKLED-MARKER"
    reg = Registry(reg_root)
    good, _ = reg.save(_train_tiny(seed), promote_if_better=True)
    pipeline = Pipeline()
    watcher = ModelWatcher(pipeline, reg_root)
    if asyncio.run(watcher.check_once()) != "swapped" or watcher.serving != good:
        raise RuntimeError(f"the good model {good} did not go into service")
    results: dict[str, dict[str, Any]] = {}
    for case in CASES:
        name = _build(reg, good, case, marker, outside)
        promote_refused = True
        seen = len(watcher.history)
        try:
            reg.promote(name)
            promote_refused = False
        except ArtifactError:
            pass
        (reg_root / "CURRENT").write_text(name + "\n")  # bypass promote, as a damaged registry copy would
        outcome = asyncio.run(watcher.check_once())
        results[case] = {
            "promote_refused": promote_refused,
            "watcher": outcome or "not loaded (registry pointer refused)",
            "refused": promote_refused and outcome != "swapped",
            "still_serving_good": watcher.serving == good and _serves(pipeline),
            "reason": watcher.history[-1].get("reason") if len(watcher.history) > seen else "unsafe CURRENT pointer",
        }
        log(f"bad model {case}: refused={results[case]['refused']} serving={watcher.serving}")
        (reg_root / "CURRENT").write_text(good + "\n")
    out = {
        "cases": results,
        "refused": sum(r["refused"] for r in results.values()),
        "total": len(CASES),
        "marker_created": marker.exists(),
        "old_version_kept_serving": all(r["still_serving_good"] for r in results.values()),
    }
    shutil.rmtree(base, ignore_errors=True)
    return out
