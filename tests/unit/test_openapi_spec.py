"""openapi.yaml is a valid OpenAPI 3.1 document and names every error code the API can answer.

What the running service does against it is checked by schemathesis (tests/e2e/test_contract.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

from tests.openapi import spec

ROOT = Path(__file__).resolve().parents[2]


def test_the_spec_is_valid_openapi_3_1() -> None:
    document = spec()
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)  # raises with the first problem


def test_every_path_documents_get_and_head() -> None:
    for path, item in spec()["paths"].items():
        assert {"get", "head"} <= set(item), path
        assert "content" not in str(item["head"]), f"HEAD {path} documents a body"


def test_every_error_code_in_the_code_is_in_the_spec() -> None:
    sources = "".join((ROOT / "api_lambda" / name).read_text() for name in ("app.py", "routes.py", "http.py"))
    raised = set(re.findall(r'(?:bad_request|not_found|ApiError\(\s*\d{3},)\s*\(?\s*"([a-z_]+)"', sources))
    documented = set(
        spec()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    )
    assert raised, "no error code found in the sources"
    assert raised <= documented, raised - documented
