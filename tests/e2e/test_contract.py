"""The running service against its published contract: schemathesis fuzzes openapi.yaml over HTTP.

The local stack (`python -m devstack`: API behind the API Gateway emulation, worker, SQS, Valkey) with
an upstream HTTP source, so that it starts in seconds. Every check is on (`--checks all`: server
errors, status codes, content types, headers and bodies against the schema, negative data rejected,
positive data accepted, unsupported methods, Allow on OPTIONS, ...), for a bounded number of cases
with a fixed seed, so that a failure can be replayed with the command it prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import StackProcess, clean_env, eventually, start_stack
from tests.e2e.rig import UpstreamSource
from tests.openapi import SPEC_PATH

pytestmark = pytest.mark.timeout(150)

PAGE = "https://board.example.com"  # the one browser origin this stack allows
MAX_EXAMPLES = 40  # per operation and phase: about 500 cases, 10-15 s here
SEED = 13


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    source = UpstreamSource()
    # Only `global` is served: any other board the fuzzer invents is a 404 at once, not a refresh.
    env = clean_env(
        LEADERBOARD_API_URL=source.url, LEADERBOARD_BOARDS="global", LEADERBOARD_CORS_ORIGINS=PAGE
    )
    running = start_stack(tmp_path_factory.mktemp("contract"), "--api-workers", "1", env=env)
    try:
        running.wait_ready()
        eventually(lambda: running.get().status_code == 200)  # a snapshot exists: no 503 warming_up
        yield running
    finally:
        running.kill()
        source.stop()


def test_schemathesis_finds_nothing_with_every_check_on(stack: StackProcess, tmp_path: Path) -> None:
    # When schemathesis generates requests from openapi.yaml and checks every answer against it
    command = [sys.executable, "-m", "schemathesis.cli", "run", str(SPEC_PATH), "--url", stack.url,
               "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
               "--request-timeout", "10", "--output-truncate", "false"]  # fmt: skip
    result = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    # Then every case passed, and there were enough of them to mean something
    found = re.search(r"(\d+) generated, (\d+) passed", output)
    assert result.returncode == 0 and found, output[-6000:]
    generated, passed = int(found.group(1)), int(found.group(2))
    assert generated == passed >= 200, output[-6000:]
    print(f"\nschemathesis: {generated} cases, {generated - passed} failures (seed {SEED})")


def test_a_browser_page_on_an_allowed_origin_can_call_make_dev(stack: StackProcess) -> None:
    # When a browser on the allowed origin sends its preflight for a scripted GET with If-None-Match
    preflight = stack.client.options(
        "/leaderboard",
        headers={"Origin": PAGE, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "if-none-match"},
    )  # fmt: skip
    # Then make dev answers it as API Gateway would, with no body and no length
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == PAGE
    assert preflight.headers["access-control-allow-methods"] == "GET, HEAD"
    assert preflight.headers["access-control-allow-headers"] == "If-None-Match"
    assert preflight.headers["access-control-max-age"] == "600"
    assert "content-length" not in preflight.headers and preflight.content == b""
    # And the GET is readable by the page, caching headers included, and varies by Origin
    response = stack.client.get("/leaderboard", headers={"Origin": PAGE})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == PAGE
    assert "X-Snapshot-Age" in response.headers["access-control-expose-headers"]
    assert response.headers["vary"] == "Origin"
    assert response.headers["x-content-type-options"] == "nosniff"
    # And a page on another origin gets no permission
    other = stack.client.get("/leaderboard", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers
    # And HEAD and 304 have the length the GET has, or none
    head = stack.client.head("/leaderboard")
    assert head.headers["content-length"] == str(len(response.content)) and head.content == b""
    etag = response.headers["etag"]
    not_modified = stack.client.get("/leaderboard", headers={"If-None-Match": etag})
    if not_modified.headers["etag"] == etag:  # unless a refresh landed in between
        assert not_modified.status_code == 304
        assert "content-length" not in not_modified.headers and not_modified.content == b""
