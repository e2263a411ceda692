"""HEAD gets headers only, whatever the outcome, also for an event that cannot be parsed."""

from __future__ import annotations

import pytest

from tests.harness import ApiHarness
from tests.support import http_event

pytestmark = pytest.mark.usefixtures("sqs")


@pytest.mark.parametrize(("version", "status"), [("2.0", 400), ("1.0", 404)])
def test_a_head_request_without_a_path_gets_no_body(api: ApiHarness, version: str, status: int) -> None:
    # Given a HEAD event without a path (found by tests/faults/test_fuzz_http.py): payload 2.0 cannot
    # be parsed without rawPath, payload 1.0 parses to a path that does not exist
    event = http_event("", method="HEAD", version=version)
    # When the API handles it
    response = api.app.invoke(event, api.context, cold_start=False)
    # Then it is the documented error, without a body
    assert response["statusCode"] == status
    assert response["body"] == ""
    assert response["headers"]["Content-Type"].startswith("application/json")
