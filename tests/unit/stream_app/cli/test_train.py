"""``streamrec train --warm-epochs``: a retraining continues the serving model, through the same gate."""

from __future__ import annotations

import json

import pytest

from models.deep.registry import Registry
from stream_app.cli.main import main
from stream_app.settings import get_settings
from tests.unit.models.deep.test_train import write_jsonl
from tests.unit.models.deep.test_warm import walks

SMALL = ["--dim", "16", "--max-len", "8", "--epochs", "3", "--patience", "0", "--no-progress"]


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMREC_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_warm_retraining_from_the_cli_grows_the_serving_model_and_is_gated(tmp_path, capsys):
    events = walks("a", 20, 60, 10, 0.0)
    path = tmp_path / "events.jsonl"
    write_jsonl(path, events)
    assert main(["train", "--input", str(path), *SMALL]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["promoted"] and "warm_start" not in first["metrics"]
    events += walks("n", 12, 600, 4, 1e6, user0=100)  # new users, new items
    write_jsonl(path, events)
    assert main(["train", "--input", str(path), "--warm-epochs", "2", *SMALL]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["metrics"]["warm_start"] == 1.0 and second["metrics"]["new_items"] == 12
    assert second["gate"]["rule"] == "shared-holdout"
    registry = Registry(get_settings().registry_path)
    manifest = registry.manifest(second["version"])
    assert manifest["data_end_ts"] == max(e.ts for e in events)
    assert len(json.loads((registry.versions / second["version"] / "vocab.json").read_text())) == 32
