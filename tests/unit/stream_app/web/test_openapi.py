"""The OpenAPI document names every view the worker registers, and its schemas are valid JSON Schema."""

from __future__ import annotations

import jsonschema
import orjson
import pytest

from stream_app.settings import Settings
from stream_app.web.openapi import openapi_document
from stream_app.worker.build import build_worker


def test_every_registered_view_is_documented_and_nothing_else():
    w = build_worker(Settings(app_id="openapi-doc"))
    doc = openapi_document(top_k=w.settings.top_k)
    assert set(w.app.web.views) == set(doc["paths"])


@pytest.mark.parametrize("auth", [False, True])
def test_the_document_is_json_with_valid_schemas(auth):
    doc = orjson.loads(orjson.dumps(openapi_document(top_k=7, auth=auth)))
    assert doc["openapi"].startswith("3.1")
    assert ("security" in doc) is auth
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "200" in op["responses"], (path, method)
            for resp in op["responses"].values():
                for media in resp.get("content", {}).values():
                    jsonschema.Draft202012Validator.check_schema(media["schema"])
    item_n = doc["components"]["schemas"]["SessionRequest"]["properties"]["n"]
    assert item_n["default"] == 7 and item_n["maximum"] == 100
