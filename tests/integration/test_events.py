"""The sample events in events/ through the real Lambda entry points, in-process, on real engines.

events/ holds what each handler receives in AWS (the shapes `sam local generate-event` prints, with
our routes and messages): a newcomer reads them to see a handler's input, or feeds them to
`sam local invoke -e`. This test keeps them true: the SQS sample goes through `refresh_worker.handler`
(PostgreSQL → Valkey), then both API Gateway samples through `api_lambda.handler`, configured from the
process environment exactly as Lambda configures them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import api_lambda.handler as api_handler
import refresh_worker.handler as worker_handler
from common.runtime import run
from testkit.engines import PostgresEngine, Queues, ValkeyServer
from tests.support import EVENTS, FakeContext, body_of

pytestmark = pytest.mark.usefixtures("sqs")


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


V2, V1, SQS = sample("http-api-v2.json"), sample("rest-api-v1.json"), sample("sqs-refresh.json")
USER = V1["path"].rsplit("/", 1)[1]  # the player the REST sample asks about
PLAYERS = [  # (user id, name, score on two-sum): the sample's player in the middle
    ("00000000-0000-4000-8000-000000000001", "Ada", 300),
    ("00000000-0000-4000-8000-000000000002", "Björn", 250),
    (USER, "Chidi", 200),
    ("00000000-0000-4000-8000-000000000004", "Dana", 150),
    ("00000000-0000-4000-8000-000000000005", "Eun-ji", 100),
]


@pytest.fixture
def lambda_environment(
    monkeypatch: pytest.MonkeyPatch,
    postgres: PostgresEngine,
    valkey: ValkeyServer,
    queues: Queues,
    key_prefix: str,
) -> Iterator[None]:
    """The players in PostgreSQL, both functions' variables in os.environ, fresh containers; afterwards
    the containers' clients are closed and forgotten."""
    values = ", ".join(f"('{user}', '{name}', 'two-sum', {score})" for user, name, score in PLAYERS)
    postgres.psql(
        "truncate challenge_results, challenge_best, leaderboard_totals restart identity;\n"
        f"insert into challenge_results (user_id, username, challenge_id, score) values {values};"
    )
    env = {"VALKEY_HOST": valkey.host, "VALKEY_PORT": str(valkey.port), "LEADERBOARD_KEY": key_prefix,
           "REFRESH_QUEUE_URL": queues.queue_url, "DATABASE_URL": postgres.uri}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handlers: list[ModuleType] = [worker_handler, api_handler]
    for handler in handlers:
        handler.reset()
    yield
    for handler in handlers:
        app, _ = handler._app.get()  # the container the test used (a build if it never ran: cheap)
        run(app.close())
        handler.reset()


@pytest.mark.usefixtures("lambda_environment")
def test_the_sample_events_run_through_both_handlers() -> None:
    # Given the sample SQS batch (a scheduled refresh of global, a stale challenge board)
    # When the worker's entry point handles it
    result = worker_handler.lambda_handler(SQS, FakeContext(function_name="leaderboard-worker"))
    # Then every record succeeded
    assert result == {"batchItemFailures": []}

    # When the API's entry point handles the HTTP API (payload 2.0) sample: GET /leaderboard?count=3
    top = api_handler.lambda_handler(V2, FakeContext(function_name="leaderboard-api"))
    # Then it gets the top three from the snapshot the worker wrote
    assert top["statusCode"] == 200, top
    assert top["headers"]["X-Cache"] == "HIT"
    body = body_of(top)
    assert [(e["rank"], e["username"]) for e in body["entries"]] == [(1, "Ada"), (2, "Björn"), (3, "Chidi")]
    assert body["total"] == len(PLAYERS)

    # When it handles the REST API (payload 1.0) sample: GET /leaderboard/users/{id}?around=1
    around = api_handler.lambda_handler(V1, FakeContext(function_name="leaderboard-api"))
    # Then it gets that player with one neighbour on each side
    assert around["statusCode"] == 200, around
    body = body_of(around)
    assert body["user"]["user_id"] == USER and body["user"]["rank"] == 3
    assert [e["username"] for e in body["entries"]] == ["Björn", "Chidi", "Dana"]


def test_the_sqs_sample_is_what_the_api_sends() -> None:
    # Given the bodies of the sample SQS records
    from common.messages import RefreshRequest

    bodies = [record["body"] for record in SQS["Records"]]
    # Then each is a valid refresh request exactly as the API serialises one
    assert [RefreshRequest.parse(body).to_json() for body in bodies] == bodies
