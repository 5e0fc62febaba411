"""Versioned deep-model artifacts: save, verify, promote, roll back.

Layout under ``root``::

    versions/<version>/weights.safetensors   tensors only (never a pickle)
    versions/<version>/vocab.json            item ids, index j+1 = vocab[j]
    versions/<version>/manifest.json         version, created_at, sha256 of both files, config, metrics,
                                             gate (the promotion decision), serving (pool, history),
                                             data_end_ts (the newest event trained on)
    CURRENT                                  the promoted version (one line)
    HISTORY                                  JSON list of promoted versions, oldest first (for rollback)

Every pointer file is written to a temporary file and moved into place with ``os.replace``;
a version folder is built under a temporary name and renamed when complete, so a reader sees
either nothing or a whole artifact. :meth:`Registry.load` trusts nothing on disk: it refuses
unsafe version names and symlinks, checks both hashes, parses the weights with safetensors,
checks every tensor shape against the manifest and vocabulary, and checks that all weights are
finite; any failure raises :class:`ArtifactError` with a readable reason.

With a ``signing_key`` the registry signs what it saves (an HMAC-SHA256 of the manifest, which
holds both files' hashes) and loads only artifacts that carry a valid signature: a worker then
serves nothing but what its trainer wrote, even if someone can write to the registry folder.

Promotion (:meth:`Registry.save`) goes through the gate of :mod:`models.deep.gate`: the
candidate and the serving model are scored on the *same* fresh holdout (the candidate's
``TrainResult.holdout``, the newest events), and the candidate is promoted unless it is worse
beyond that holdout's noise or the holdout has too few users to tell. The manifest's ``gate``
records the decision, both scores, the interval and the holdout's size (for ``streamrec model
list`` and the dashboard). A result without a holdout (built by hand) is compared, as before, by
its stored NDCG@10 against the serving model's, within ``tolerance``; ``gate.rule`` says which.

>>> import tempfile, torch
>>> from models.deep.model import SequenceModel, Vocabulary
>>> from models.deep.train import TrainConfig, TrainResult
>>> cfg = TrainConfig(dim=8, layers=1, heads=1, max_len=4)
>>> res = TrainResult(SequenceModel(2, 8, 1, 1, 4), Vocabulary(["a", "b"]), cfg, {"ndcg@10": 0.1}, [], "cpu")
>>> reg = Registry(tempfile.mkdtemp())
>>> version, promoted = reg.save(res)
>>> promoted, reg.current() == version, reg.load(version).version == version
(True, True, True)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from models.deep.gate import MIN_USERS, RESAMPLES, compare, target_gains
from models.deep.model import DeepRecommender, SequenceModel, Vocabulary

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
"""Safe version names: letters, digits, ``-`` and ``_`` (no dots, slashes or leading dash)."""
_STAMP_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)-(\d+)$")
MAX_ARTIFACT_BYTES = 2 * 1024**3
FORMAT = 1
_SHAPE_KEYS = ("n_items", "dim", "layers", "heads", "max_len")


class ArtifactError(Exception):
    """An artifact or registry operation was refused; ``str(exc)`` says why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_plain(path: Path, limit: int = MAX_ARTIFACT_BYTES) -> bytes:
    """Read a regular file, refusing symlinks (O_NOFOLLOW) and oversized files."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise ArtifactError(f"{path.name} is missing") from None
    except OSError as exc:  # ELOOP: the final component is a symlink
        raise ArtifactError(f"{path.name} cannot be opened safely ({exc.strerror}); symlinks are refused") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"{path.name} is not a regular file")
        if st.st_size > limit:
            raise ArtifactError(f"{path.name} is {st.st_size} bytes, over the {limit}-byte limit")
        return fh.read()


def _sort_key(version: str) -> tuple[int, str, int]:
    m = _STAMP_RE.match(version)
    return (0, m.group(1), int(m.group(2))) if m else (1, version, 0)


def _shape_problem(shape: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str | None:
    """Why the manifest's model shape is not the one of ``tensors`` (None when it is)."""
    dim, n_items, max_len, layers = shape["dim"], shape["n_items"], shape["max_len"], shape["layers"]
    if min(dim, n_items, max_len, layers, shape["heads"]) < 1 or dim % shape["heads"]:
        return f"bad model shape in manifest: {shape}"
    for name, want in (("item_emb.weight", (n_items + 1, dim)), ("pos_emb.weight", (max_len, dim))):
        got = tensors.get(name)
        if got is None:
            return f"weight {name!r} is missing"
        if tuple(got.shape) != want:
            return f"weight {name!r} is {tuple(got.shape)} {got.dtype}, the manifest's shape needs {want}"
    found_layers = {n.split(".")[2] for n in tensors if n.startswith("encoder.layers.")}
    if len(found_layers) != layers:
        return f"the weights hold {len(found_layers)} layer(s), the manifest's shape needs {layers}"
    return None


class Registry:
    """A folder of model versions with a promoted pointer; see the module docstring."""

    def __init__(self, root: Path | str, signing_key: bytes | None = None):
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.signing_key = signing_key or None

    def _signature(self, manifest: dict[str, Any]) -> str:
        assert self.signing_key is not None
        body = json.dumps({k: v for k, v in manifest.items() if k != "signature"}, sort_keys=True,
                          separators=(",", ":")).encode()
        return hmac.new(self.signing_key, body, hashlib.sha256).hexdigest()

    def _check_signature(self, version: str, manifest: dict[str, Any]) -> None:
        if self.signing_key is None:
            return
        given = manifest.get("signature")
        if not isinstance(given, str) or not hmac.compare_digest(given, self._signature(manifest)):
            raise ArtifactError(f"{version}: manifest is not signed with this registry's key "
                                "(STREAMREC_MODEL_SIGNING_KEY); refusing to serve it")

    # ---- names and pointers ------------------------------------------------
    @staticmethod
    def check_name(version: str) -> str:
        if not isinstance(version, str) or not VERSION_RE.match(version):
            raise ArtifactError(
                f"unsafe version name {version!r}: use letters, digits, '-' and '_' only (at most 100)"
            )
        return version

    def _dir(self, version: str) -> Path:
        self.check_name(version)
        if self.versions.is_symlink():
            raise ArtifactError("the registry's versions folder is a symlink; refused")
        path = self.versions / version
        if path.is_symlink():
            raise ArtifactError(f"version {version} is a symlink; refused")
        if not path.is_dir():
            raise ArtifactError(f"version {version} does not exist")
        return path

    def current(self) -> str | None:
        """The promoted version, or None when nothing was promoted yet."""
        path = self.root / "CURRENT"
        if not path.exists():
            return None
        name = _read_plain(path, 4096).decode("utf-8", "replace").strip()
        return self.check_name(name) if name else None

    def _history(self) -> list[str]:
        path = self.root / "HISTORY"
        if not path.exists():
            return []
        try:
            data = json.loads(_read_plain(path, 16 * 1024**2))
        except ValueError as exc:
            raise ArtifactError(f"HISTORY is not valid JSON: {exc}") from None
        if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
            raise ArtifactError("HISTORY must be a JSON list of version names")
        return data

    def _set_current(self, version: str, history: list[str]) -> None:
        _write_atomic(self.root / "HISTORY", json.dumps(history).encode())
        _write_atomic(self.root / "CURRENT", (version + "\n").encode())

    # ---- writing -----------------------------------------------------------
    def _new_version(self) -> str:
        stamp = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime())
        seq = 1 + max((_sort_key(v)[2] for v in self._names() if _STAMP_RE.match(v)), default=0)
        return f"{stamp}-{seq}"

    def _names(self) -> list[str]:
        if not self.versions.is_dir():
            return []
        return sorted((p.name for p in self.versions.iterdir()
                       if VERSION_RE.match(p.name) and p.is_dir() and not p.is_symlink()), key=_sort_key)

    def save(self, result: Any, promote_if_better: bool = True, tolerance: float = 0.0, *,
             min_users: int = MIN_USERS, resamples: int = RESAMPLES) -> tuple[str, bool]:
        """Write ``result`` (a :class:`models.deep.train.TrainResult`) as a new version.

        With ``promote_if_better`` the version is promoted when the gate says so (see the module
        docstring): when nothing is promoted yet, when the serving model cannot be read, or when
        on the shared fresh holdout (of at least ``min_users`` users) the candidate is not worse
        than the serving model beyond the noise (the upper end of the paired bootstrap interval
        of the NDCG@10 difference is at least ``-tolerance``). Returns ``(version, promoted)``.
        """
        self.versions.mkdir(parents=True, exist_ok=True)
        model: SequenceModel = result.model
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        for name, t in state.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ArtifactError(f"refusing to save: weight {name!r} has non-finite values")
        weights = st_save(state)
        vocab = json.dumps(list(result.vocab.items)).encode()
        metrics = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in result.metrics.items()}
        gate = self._gate(result, metrics.get("ndcg@10"), tolerance, min_users, resamples) if promote_if_better \
            else {"promote": False, "reason": "saved without asking for promotion"}
        data_end = getattr(result, "data_end_ts", None)
        for _ in range(100):
            version = self._new_version()
            tmp = Path(tempfile.mkdtemp(dir=self.versions, prefix=".tmp-"))
            manifest = {
                "format": FORMAT, "version": version,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "weights_sha256": _sha256(weights), "vocab_sha256": _sha256(vocab),
                "model": model.config(), "collapse_repeats": bool(result.config.collapse_repeats),
                "config": result.config.to_dict(), "metrics": metrics,
                "epoch_seconds": list(result.epoch_seconds), "device": result.device,
                "gate": gate, "serving": dict(getattr(result, "serving", {}) or {}),
                "data_end_ts": float(data_end) if data_end is not None else None,
            }
            if self.signing_key is not None:
                manifest["signature"] = self._signature(manifest)
            (tmp / "weights.safetensors").write_bytes(weights)
            (tmp / "vocab.json").write_bytes(vocab)
            (tmp / "manifest.json").write_bytes(json.dumps(manifest, indent=2).encode())
            try:
                os.rename(tmp, self.versions / version)  # fails if the name was taken meanwhile
                break
            except OSError:
                for f in tmp.iterdir():
                    f.unlink()
                tmp.rmdir()
        else:
            raise ArtifactError("could not allocate a new version name")
        promoted = False
        if gate["promote"]:
            self.promote(version)
            promoted = True
        return version, promoted

    def _gate(self, result: Any, ndcg: float | None, tolerance: float, min_users: int,
              resamples: int) -> dict[str, Any]:
        """The promotion decision for ``result`` against the serving model (see :meth:`save`)."""
        if ndcg is None or not math.isfinite(ndcg):
            return {"promote": False, "rule": "finite", "reason": "the candidate's holdout NDCG@10 is not finite"}
        cur = self.current()
        if cur is None:
            return {"promote": True, "rule": "first", "reason": "no model is serving yet", "candidate_ndcg@10": ndcg}
        holdout, gains = getattr(result, "holdout", None), getattr(result, "holdout_gains", None)
        try:
            if holdout is None or gains is None:
                return self._legacy_gate(cur, ndcg, tolerance)
            serving = self.load(cur)
        except ArtifactError as exc:
            return {"promote": True, "rule": "unreadable", "current_version": cur,
                    "reason": f"the serving model cannot be read ({exc})", "candidate_ndcg@10": ndcg}
        decision = compare(holdout.users, gains, target_gains(serving, holdout), tolerance, min_users, resamples)
        seen_until = self.manifest(cur).get("data_end_ts")
        decision.update(rule="shared-holdout", current_version=cur, holdout_from_ts=holdout.from_ts,
                        current_saw_holdout=isinstance(seen_until, (int, float)) and seen_until >= holdout.from_ts)
        return decision

    def _legacy_gate(self, cur: str, ndcg: float, tolerance: float) -> dict[str, Any]:
        best = self.manifest(cur)["metrics"].get("ndcg@10")
        ok = best is None or ndcg >= float(best) - tolerance
        return {"promote": ok, "rule": "stored-metrics", "current_version": cur, "tolerance": tolerance,
                "candidate_ndcg@10": ndcg, "current_ndcg@10": best,
                "reason": "no shared holdout: stored NDCG@10 compared (measured on different holdouts)"}

    def data_end(self) -> float | None:
        """The newest event time the serving model was trained on (None: none serving, or unknown)."""
        cur = self.current()
        if cur is None:
            return None
        try:
            value = self.manifest(cur).get("data_end_ts")
        except ArtifactError:
            return None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    # ---- reading -----------------------------------------------------------
    def manifest(self, version: str) -> dict[str, Any]:
        """The parsed manifest of a version (names and symlinks checked, contents not verified)."""
        path = self._dir(version) / "manifest.json"
        try:
            data = json.loads(_read_plain(path, 16 * 1024**2))
        except ValueError as exc:
            raise ArtifactError(f"manifest of {version} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != version:
            raise ArtifactError(f"manifest of {version} does not name version {version}")
        return data

    def list(self) -> list[dict[str, Any]]:
        """Every version, oldest first: ``{version, created_at, metrics, current, error?}``."""
        cur = self.current()
        out = []
        for name in self._names():
            row: dict[str, Any] = {"version": name, "current": name == cur}
            try:
                m = self.manifest(name)
                row.update(created_at=m.get("created_at"), metrics=m.get("metrics", {}), gate=m.get("gate"))
            except ArtifactError as exc:
                row["error"] = str(exc)
            out.append(row)
        return out

    def promote(self, version: str) -> None:
        """Make ``version`` current after fully verifying it (a broken artifact is refused)."""
        self.load(version)
        history = [v for v in self._history() if v != version] + [version]
        self._set_current(version, history)

    def rollback(self) -> str:
        """Go back to the previously promoted version and return it."""
        history = self._history()
        cur = self.current()
        if cur is not None and history and history[-1] == cur:
            history = history[:-1]
        if not history:
            raise ArtifactError("no earlier promoted version to roll back to")
        target = self.check_name(history[-1])
        self.load(target)
        self._set_current(target, history)
        return target

    def load(self, version: str) -> DeepRecommender:
        """Load and verify a version; raise :class:`ArtifactError` with the reason if anything is off."""
        folder = self._dir(version)
        manifest = self.manifest(version)
        self._check_signature(version, manifest)
        weights = _read_plain(folder / "weights.safetensors")
        vocab_raw = _read_plain(folder / "vocab.json")
        if _sha256(weights) != manifest.get("weights_sha256"):
            raise ArtifactError(f"{version}: weights.safetensors does not match the manifest's sha256")
        if _sha256(vocab_raw) != manifest.get("vocab_sha256"):
            raise ArtifactError(f"{version}: vocab.json does not match the manifest's sha256")
        try:
            vocab = Vocabulary(json.loads(vocab_raw))
        except (ValueError, TypeError) as exc:
            raise ArtifactError(f"{version}: bad vocabulary: {exc}") from None
        shape = manifest.get("model")
        if not isinstance(shape, dict) or any(not isinstance(shape.get(k), int) for k in _SHAPE_KEYS):
            raise ArtifactError(f"{version}: manifest lacks the model shape {_SHAPE_KEYS}")
        if shape["n_items"] != len(vocab):
            raise ArtifactError(f"{version}: manifest says {shape['n_items']} items, vocabulary has {len(vocab)}")
        try:
            tensors = st_load(weights)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{version}: weights are not a valid safetensors file: {exc}") from None
        # the manifest's shape must be the weights' before a model is built: a model then takes
        # about the memory its weights already take, whatever the manifest claims
        problem = _shape_problem(shape, tensors)
        if problem:
            raise ArtifactError(f"{version}: {problem}")
        try:
            model = SequenceModel(**{k: shape[k] for k in _SHAPE_KEYS})
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{version}: bad model shape in manifest: {exc}") from None
        expected = model.state_dict()
        if set(tensors) != set(expected):
            missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
            raise ArtifactError(f"{version}: weight names differ (missing {missing[:3]}, unexpected {extra[:3]})")
        for name, t in tensors.items():
            if t.shape != expected[name].shape or t.dtype != expected[name].dtype:
                raise ArtifactError(
                    f"{version}: weight {name!r} is {tuple(t.shape)} {t.dtype}, the manifest's shape needs "
                    f"{tuple(expected[name].shape)} {expected[name].dtype}"
                )
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ArtifactError(f"{version}: weight {name!r} has non-finite values")
        model.load_state_dict(tensors, strict=True)
        serving = manifest.get("serving")
        pool = serving.get("pool_size") if isinstance(serving, dict) else None
        if not (isinstance(pool, int) and 1 <= pool <= len(vocab)):
            pool = None  # an older artifact, or a damaged field: the retriever's fallback pool serves
        rec = DeepRecommender(model, vocab, version, collapse=bool(manifest.get("collapse_repeats", True)),
                              pool_size=pool)
        try:
            rec.check()
        except ValueError as exc:
            raise ArtifactError(f"{version}: {exc}") from None
        return rec
