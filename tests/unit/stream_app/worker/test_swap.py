"""The model watcher: a promoted model goes into service; a bad one is refused and the old one stays."""

from __future__ import annotations

from models.base import Interaction, UserContext
from models.deep.registry import Registry
from models.deep.train import TrainConfig, train
from stream_app.core.pipeline import Pipeline
from stream_app.worker.swap import ModelWatcher


def small_result(seed: int):
    events = [Interaction(f"u{u}", f"i{(u + t) % 30}", "click", float(t * 10 + u)) for u in range(40) for t in range(12)]
    events.sort(key=lambda e: e.ts)
    return train(events, TrainConfig(dim=8, layers=1, heads=1, epochs=1, max_len=10, seed=seed), device="cpu",
                 progress=False)


async def test_swap_then_refuse_a_corrupt_artifact(tmp_path):
    registry = Registry(tmp_path / "registry")
    pipeline = Pipeline()
    watcher = ModelWatcher(pipeline, registry.root)
    assert await watcher.check_once() is None  # nothing promoted yet
    assert pipeline.ranker.deep is None

    good, _ = registry.save(small_result(0), promote_if_better=False)
    registry.promote(good)
    assert await watcher.check_once() == "swapped"
    assert pipeline.model_version()["deep"] == good
    assert await watcher.check_once() is None  # already serving

    bad, _ = registry.save(small_result(1), promote_if_better=False)
    weights = registry.root / "versions" / bad / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated copy
    (registry.root / "CURRENT").write_text(bad + "\n")
    assert await watcher.check_once() == "refused"
    assert pipeline.model_version()["deep"] == good  # the old model keeps serving
    assert await watcher.check_once() is None  # refused once, not retried at every poll
    history = list(watcher.history)
    assert [h["ok"] for h in history] == [True, False]
    assert "sha256" in history[1]["reason"] or "weights" in history[1]["reason"]

    ranked = pipeline.ranker.rank_many_with_sources([UserContext("u1", recent_items=("i1", "i2"))], 5, [frozenset()])
    assert ranked[0] and len(ranked[0]) <= 5


async def test_a_worker_with_a_signing_key_serves_only_signed_models(tmp_path):
    from stream_app.settings import Settings
    from stream_app.worker.build import build_worker

    w = build_worker(Settings(data_dir=tmp_path / "w", registry_dir=tmp_path / "registry",
                              model_signing_key="trainer-secret", app_id="unit-signed"))
    unsigned, _ = Registry(tmp_path / "registry").save(small_result(0))  # promoted, but not signed
    assert await w.watcher.check_once() == "refused"
    assert w.pipeline.ranker.deep is None and "not signed" in w.watcher.history[-1]["reason"]
    signed, _ = Registry(tmp_path / "registry", b"trainer-secret").save(small_result(1), promote_if_better=False)
    Registry(tmp_path / "registry").promote(signed)
    assert await w.watcher.check_once() == "swapped"
    assert w.pipeline.model_version()["deep"] == signed != unsigned
