"""The model registry: versions, promotion, rollback, and refusal of every kind of bad artifact."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil

import pytest
import torch
from safetensors.torch import save as st_save

from models.base import UserContext
from models.deep.model import SequenceModel, Vocabulary
from models.deep.registry import ArtifactError, Registry, _sha256
from models.deep.train import TrainConfig, TrainResult

torch.set_num_threads(2)

CFG = TrainConfig(dim=16, layers=1, heads=2, max_len=6)


def result(ndcg: float = 0.2, dim: int = 16, seed: int = 0) -> TrainResult:
    torch.manual_seed(seed)
    model = SequenceModel(n_items=12, dim=dim, layers=1, heads=2, max_len=6)
    vocab = Vocabulary([f"i{j}" for j in range(12)])
    return TrainResult(model, vocab, CFG, {"hr@10": 0.5, "ndcg@10": ndcg}, [0.1], "cpu")


@pytest.fixture
def reg(tmp_path) -> Registry:
    return Registry(tmp_path / "registry")


def rehash(reg: Registry, version: str, weights: bytes | None = None) -> None:
    """Rewrite the manifest hash so a test reaches the check after the hash."""
    folder = reg.versions / version
    if weights is not None:
        (folder / "weights.safetensors").write_bytes(weights)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["weights_sha256"] = _sha256((folder / "weights.safetensors").read_bytes())
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_save_list_promote_rollback(reg):
    assert reg.current() is None and reg.list() == []
    v1, p1 = reg.save(result(0.20))
    # results built by hand carry no holdout: the stored NDCG@10 is compared within the tolerance
    v2, p2 = reg.save(result(0.195, seed=1), tolerance=0.01)  # within tolerance: promoted
    v3, p3 = reg.save(result(0.10, seed=2), tolerance=0.01)  # clearly worse: kept, not promoted
    assert reg.manifest(v2)["gate"]["rule"] == "stored-metrics"
    assert (p1, p2, p3) == (True, True, False)
    assert [row["version"] for row in reg.list()] == [v1, v2, v3]
    assert v1 < v2 < v3 or len({v1, v2, v3}) == 3
    assert reg.current() == v2
    assert [row["current"] for row in reg.list()] == [False, True, False]
    assert reg.list()[2]["metrics"]["ndcg@10"] == pytest.approx(0.10)

    loaded = reg.load(v2)
    original = result(0.195, seed=1).recommender(v2)
    user = UserContext("u", recent_items=("i1", "i2"))
    assert loaded.version == v2
    assert loaded.rank(user, k=5) == original.rank(user, k=5)

    reg.promote(v3)
    assert reg.current() == v3
    assert reg.rollback() == v2
    assert reg.current() == v2
    assert reg.rollback() == v1
    with pytest.raises(ArtifactError, match="no earlier"):
        reg.rollback()
    assert reg.current() == v1
    _, p4 = reg.save(result(0.9, seed=3), promote_if_better=False)
    assert not p4 and reg.current() == v1


def test_version_names_sort_by_time(reg):
    names = [reg.save(result(seed=s), promote_if_better=False)[0] for s in range(3)]
    for name in names:
        assert Registry.check_name(name) == name
        stamp, seq = name.rsplit("-", 1)
        assert stamp.endswith("Z") and seq.isdigit()
    assert [int(n.rsplit("-", 1)[1]) for n in names] == [1, 2, 3]


def test_non_finite_metrics_never_promoted(reg):
    version, promoted = reg.save(result(float("nan")))
    assert not promoted and reg.current() is None
    assert reg.manifest(version)["metrics"]["ndcg@10"] is None


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "/etc", "/tmp/x", "a\\b", ".hidden", "", "a" * 101, "a\nb"])
def test_unsafe_names_refused(reg, name):
    reg.save(result())
    for call in (reg.load, reg.promote, reg.manifest):
        with pytest.raises(ArtifactError, match="unsafe version name"):
            call(name)


def test_symlinked_version_dir_refused(reg, tmp_path):
    version, _ = reg.save(result())
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(reg.versions / version, elsewhere)
    os.symlink(elsewhere, reg.versions / "linked")
    with pytest.raises(ArtifactError, match="symlink"):
        reg.load("linked")
    assert "linked" not in [row["version"] for row in reg.list()]


@pytest.mark.parametrize("filename", ["weights.safetensors", "manifest.json", "vocab.json"])
def test_symlinked_files_refused(reg, tmp_path, filename):
    version, _ = reg.save(result())
    folder = reg.versions / version
    target = tmp_path / filename
    shutil.move(folder / filename, target)
    os.symlink(target, folder / filename)
    with pytest.raises(ArtifactError, match="symlink"):
        reg.load(version)


def test_truncated_weights_refused(reg):
    version, _ = reg.save(result())
    path = reg.versions / version / "weights.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match="sha256"):
        reg.load(version)
    rehash(reg, version)  # even with a matching hash the file does not parse
    with pytest.raises(ArtifactError, match="not a valid safetensors"):
        reg.load(version)


def test_bit_flip_refused(reg):
    version, _ = reg.save(result())
    path = reg.versions / version / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match the manifest's sha256"):
        reg.load(version)


def test_vocab_tampering_refused(reg):
    version, _ = reg.save(result())
    (reg.versions / version / "vocab.json").write_text(json.dumps([f"x{j}" for j in range(12)]))
    with pytest.raises(ArtifactError, match=r"vocab\.json does not match"):
        reg.load(version)


def test_wrong_shape_refused(reg):
    version, _ = reg.save(result(dim=16))
    bigger = result(dim=64).model.state_dict()  # the manifest still says dim 16
    rehash(reg, version, st_save({k: v.contiguous() for k, v in bigger.items()}))
    # whichever weight is checked first, its shape is not the one the manifest needs
    with pytest.raises(ArtifactError, match=r"weight '[\w.]+' is \([\d, ]+\) \S+, the manifest's shape needs") as err:
        reg.load(version)
    got, needed = re.findall(r"\(([\d, ]+)\)", str(err.value))[:2]
    assert got != needed


def test_vocab_size_mismatch_refused(reg):
    version, _ = reg.save(result())
    folder = reg.versions / version
    vocab = json.dumps([f"i{j}" for j in range(11)]).encode()
    (folder / "vocab.json").write_bytes(vocab)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["vocab_sha256"] = _sha256(vocab)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="12 items, vocabulary has 11"):
        reg.load(version)


def test_nan_weights_refused(reg):
    res = result()
    version, _ = reg.save(res)
    state = {k: v.clone().contiguous() for k, v in res.model.state_dict().items()}
    state["pos_emb.weight"][2, 3] = float("nan")
    rehash(reg, version, st_save(state))
    with pytest.raises(ArtifactError, match=r"pos_emb\.weight.*non-finite"):
        reg.load(version)
    with torch.no_grad():
        res.model.item_emb.weight[1, 1] = float("inf")
    with pytest.raises(ArtifactError, match="refusing to save"):
        reg.save(res)


class _Marker:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_payload_never_unpickled(reg, tmp_path):
    marker = tmp_path / "UNPICKLED"
    payload = pickle.dumps(_Marker(str(marker)))
    version, _ = reg.save(result())
    rehash(reg, version, payload)
    with pytest.raises(ArtifactError, match="not a valid safetensors"):
        reg.load(version)
    with pytest.raises(ArtifactError):
        reg.promote(version)
    assert not marker.exists()
    # the payload is live: unpickling it would have created the marker
    pickle.loads(payload).close()
    assert marker.exists()


def test_promote_refuses_broken_and_keeps_current(reg):
    good, _ = reg.save(result())
    bad, _ = reg.save(result(seed=1), promote_if_better=False)
    (reg.versions / bad / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError):
        reg.promote(bad)
    assert reg.current() == good
    with pytest.raises(ArtifactError, match="does not exist"):
        reg.load("2099-01-01T00-00-00Z-9")


def test_manifest_of_another_version_refused(reg):
    v1, _ = reg.save(result())
    v2, _ = reg.save(result(seed=1), promote_if_better=False)
    shutil.copy(reg.versions / v1 / "manifest.json", reg.versions / v2 / "manifest.json")
    with pytest.raises(ArtifactError, match="does not name version"):
        reg.load(v2)


def test_a_huge_shape_in_the_manifest_is_refused_before_anything_is_allocated(reg):
    import resource

    version, _ = reg.save(result())
    folder = reg.versions / version
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["model"]["dim"] = 8192  # the weights are dim 16: built for real, its layers would need gigabytes
    (folder / "manifest.json").write_text(json.dumps(manifest))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ArtifactError, match="the manifest's shape needs"):
        reg.load(version)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100, f"refusing the artifact raised peak memory by {grown_mib:.0f} MiB"


def test_with_a_signing_key_only_signed_artifacts_load(tmp_path):
    signed = Registry(tmp_path, signing_key=b"k-trainer")
    version, _ = signed.save(result())
    assert signed.load(version).version == version
    with pytest.raises(ArtifactError, match="not signed with this registry's key"):
        Registry(tmp_path, signing_key=b"another key").load(version)
    plain, _ = Registry(tmp_path).save(result(seed=1))  # written by something without the key
    with pytest.raises(ArtifactError, match="not signed"):
        signed.load(plain)
    # a signed manifest changed afterwards (here its metrics, to win the promotion) is refused too
    path = tmp_path / "versions" / version / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"]["ndcg@10"] = 0.99
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not signed"):
        signed.load(version)
    assert Registry(tmp_path).load(plain).version == plain  # without a key nothing is checked
