"""The trainer's CUDA path: skipped (with the reason) on machines without a CUDA GPU.

On a GPU machine: ``pytest tests/unit/models/deep/test_train_cuda.py``. What must hold there: training on
the GPU learns the planted pattern as on the CPU, the result comes back on the CPU (workers
serve on CPU), and the artifact the trainer writes loads and serves like a CPU-trained one.
"""

from __future__ import annotations

import pytest
import torch

from models.base import UserContext
from models.deep.registry import Registry
from models.deep.train import TrainConfig, main, train
from tests.unit.models.deep.test_train import TINY, chain_events, write_jsonl

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@cuda
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16-autocast"])
def test_cuda_training_learns_like_cpu(amp):
    gpu = train(chain_events(), TrainConfig(**TINY, amp=amp), device="cuda", progress=False)
    cpu = train(chain_events(), TrainConfig(**TINY), device="cpu", progress=False)
    assert gpu.device.startswith("cuda")
    assert all(p.device.type == "cpu" for p in gpu.model.parameters()), "the result must come back on the CPU"
    assert gpu.metrics["hr@10"] > 0.8, gpu.metrics
    assert abs(gpu.metrics["hr@10"] - cpu.metrics["hr@10"]) < 0.1, (gpu.metrics, cpu.metrics)
    assert gpu.history[-1]["loss"] < gpu.history[0]["loss"]
    top = gpu.recommender("g").rank(UserContext("x", recent_items=("i7", "i8", "i9")), k=1)
    assert top[0][0] == "i10"


@cuda
def test_cuda_artifact_loads_and_serves_on_cpu(tmp_path):
    events = tmp_path / "events.jsonl"
    write_jsonl(events, chain_events(n_users=60, length=12))
    reg = tmp_path / "registry"
    assert main(["--events", str(events), "--registry", str(reg), "--epochs", "3", "--dim", "16",
                 "--layers", "1", "--max-len", "8", "--device", "cuda", "--quiet"]) == 0
    registry = Registry(reg)
    version = registry.current()
    assert version is not None
    loaded = registry.load(version)  # what a worker does: verify the hashes, load onto the CPU
    assert loaded.version == version
    ranked = loaded.rank(UserContext("x", recent_items=("i3", "i4")), k=5)
    assert len(ranked) == 5 and all(torch.isfinite(torch.tensor([s for _, s in ranked])))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    rc = main(["--events", str(tmp_path / "none.jsonl"), "--registry", str(tmp_path / "r"), "--device", "cuda"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and "no CUDA GPU" in err and "--device cpu" in err
