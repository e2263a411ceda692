"""Check handler responses against openapi.yaml (schemas are JSON Schema 2020-12 in OpenAPI 3.1)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def check_response(path_template: str, response: dict[str, Any], method: str = "get") -> None:
    """Assert that an API Gateway response matches the documented status, headers and body schema."""
    operation = spec()["paths"][path_template][method]
    status = str(response["statusCode"])
    assert status in operation["responses"], f"undocumented status {status} for {path_template}"
    documented = _deref(operation["responses"][status])
    content = documented.get("content")
    if content is None:
        assert response["body"] == "", "a response documented without content has a body"
        return
    assert response["headers"]["Content-Type"].startswith("application/json")
    schema = {**content["application/json"]["schema"], "components": spec()["components"]}
    Draft202012Validator(schema).validate(json.loads(response["body"]))
    if status == "200":
        for header in ("ETag", "Cache-Control", "X-Snapshot-Age", "X-Cache"):
            assert header in response["headers"], header
