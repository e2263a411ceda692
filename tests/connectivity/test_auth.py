"""Authentication: the default user's password alone, or an ACL user with its password (ElastiCache's
RBAC). Wrong credentials are one clear error that names VALKEY_USERNAME / VALKEY_PASSWORD and never
contains a password: not in any output line, not in the exception's text, repr or traceback."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import pytest
from glide import RequestError

from api_lambda.app import ApiApp
from common.errors import CacheUnavailable
from common.valkey import ValkeyAuthError
from testkit.engines import ValkeyCluster, ValkeyServer
from tests.connectivity.conftest import (
    APP_PASSWORD,
    APP_USER,
    DEFAULT_PASSWORD,
    LEAST_PASSWORD,
    LEAST_USER,
    NO_SCRIPTS_PASSWORD,
    NO_SCRIPTS_USER,
    Endpoint,
    Writer,
    endpoint_of,
    error_lines,
    get,
)
from tests.support import FakeContext, body_of, http_event, make_entries

pytestmark = pytest.mark.usefixtures("sqs")

ApiFor = Callable[..., ApiApp]
WriterFor = Callable[[Endpoint], Writer]
ALL_PASSWORDS = (DEFAULT_PASSWORD, APP_PASSWORD, NO_SCRIPTS_PASSWORD, LEAST_PASSWORD)


@pytest.mark.parametrize(
    ("username", "password", "whoami"),
    [(None, DEFAULT_PASSWORD, "default"), (APP_USER, APP_PASSWORD, APP_USER)],
    ids=["default-user", "acl-user"],
)
def test_the_right_credentials_read_and_write(
    auth_engine: ValkeyServer | ValkeyCluster,
    api_for: ApiFor,
    writer_for: WriterFor,
    username: str | None,
    password: str,
    whoami: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given a server that requires a password, and VALKEY_PASSWORD (plus VALKEY_USERNAME for an ACL user)
    endpoint = endpoint_of(auth_engine, username=username, password=password)
    writer = writer_for(endpoint)
    # When the worker's code writes a snapshot and the API reads it
    entries = make_entries(8)
    writer.write(entries)
    response = get(api_for(endpoint))
    # Then both work, as that user
    assert response["statusCode"] == 200, response
    assert [e["user_id"] for e in body_of(response)["entries"]] == [e.user_id for e in entries]
    assert writer.command("ACL", "WHOAMI") == whoami.encode()
    # And no password shows up anywhere in the output
    out, err = capfd.readouterr()
    assert not [p for p in ALL_PASSWORDS if p in out + err]


@pytest.mark.parametrize(
    ("username", "password", "names"),
    [
        (None, "not-the-default-password-1f3a", ("VALKEY_USERNAME", "VALKEY_PASSWORD")),
        (APP_USER, "not-the-app-password-9c2e", ("VALKEY_USERNAME", "VALKEY_PASSWORD")),
        ("nobody", APP_PASSWORD, ("VALKEY_USERNAME", "VALKEY_PASSWORD")),
        (APP_USER, DEFAULT_PASSWORD, ("VALKEY_USERNAME", "VALKEY_PASSWORD")),
        (None, None, ("VALKEY_PASSWORD",)),
    ],
    ids=["wrong-default-password", "wrong-acl-password", "unknown-user", "another-users-password", "none"],
)
def test_wrong_credentials_are_one_clear_error_without_the_secret(
    auth_engine: ValkeyServer | ValkeyCluster,
    api_for: ApiFor,
    username: str | None,
    password: str | None,
    names: tuple[str, ...],
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given credentials the server refuses (or none at all)
    app = api_for(endpoint_of(auth_engine, username=username, password=password))
    capfd.readouterr()
    # When the API handles requests at cold start and after
    responses = [get(app), get(app)]
    # Then each is a 503 cache_unavailable that reveals nothing
    for response in responses:
        assert response["statusCode"] == 503
        assert body_of(response)["error"]["code"] == "cache_unavailable"
    # And each request logged one error line, naming the variables to check
    out, err = capfd.readouterr()
    lines = error_lines(out)
    assert [line["message"] for line in lines] == ["cache_unavailable", "cache_unavailable"]
    for line in lines:
        assert all(name in line["error"] for name in names), line
    # And the error raised in the app is the auth error, and none of it carries a password
    with pytest.raises(ValkeyAuthError) as caught:
        app.connection.client()
    error = caught.value
    texts = [
        out,
        err,
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        repr(error.__context__),
    ]
    secrets = [s for s in (*ALL_PASSWORDS, password) if s]
    assert not [s for s in secrets for text in texts if s in text]


def test_an_acl_user_without_lua_gets_an_error_naming_the_command(
    auth_engine: ValkeyServer | ValkeyCluster, writer_for: WriterFor
) -> None:
    # Given an ACL user whose access string lacks @scripting (the lock, swap and reads use Lua)
    writer = writer_for(endpoint_of(auth_engine, username=NO_SCRIPTS_USER, password=NO_SCRIPTS_PASSWORD))
    # When the worker's code tries to take the refresh lock
    with pytest.raises(CacheUnavailable) as caught:
        writer.write(make_entries(3))
    # Then the error says which permission is missing, for which variable's user
    message = str(caught.value)
    assert "NOPERM" in message
    assert "EVALSHA" in message
    assert "VALKEY_USERNAME" in message
    assert NO_SCRIPTS_PASSWORD not in message


def test_the_documented_least_privilege_acl_user_is_enough(
    auth_engine: ValkeyServer | ValkeyCluster, api_for: ApiFor, writer_for: WriterFor, key_prefix: str
) -> None:
    # Given the ACL user of docs/valkey.md: our keys only, and only the command categories we use
    nodes = auth_engine.nodes if isinstance(auth_engine, ValkeyCluster) else [auth_engine]
    for node in nodes:
        node.cli("ACL", "LOG", "RESET")
    endpoint = endpoint_of(auth_engine, username=LEAST_USER, password=LEAST_PASSWORD)
    writer = writer_for(endpoint)
    app = api_for(endpoint)
    entries = make_entries(30)
    # When the worker writes two boards and the API reads pages, a rank, and a stale board
    writer.write(entries)
    writer.write(entries, board="challenge:two-sum", age_seconds=600)
    first_page = get(app, {"count": "5"})
    deeper_page = get(app, {"count": "5", "offset": "10"})
    my_rank = app.invoke(
        http_event(f"/leaderboard/users/{entries[20].user_id}", {"around": "2"}), FakeContext(), False
    )
    stale = get(app, {"board": "challenge:two-sum"})
    # Then everything works
    assert [r["statusCode"] for r in (first_page, deeper_page, my_rank, stale)] == [200] * 4
    assert body_of(my_rank)["user"]["user_id"] == entries[20].user_id
    assert stale["headers"]["X-Cache"] == "STALE"
    assert writer.command("EXISTS", writer.keys("challenge:two-sum").refresh_marker) == 1
    # But keys outside the leaderboard's are out of reach
    with pytest.raises(RequestError, match="No permissions to access a key"):
        writer.command("SET", f"not-{key_prefix}", "x")
    # And that was the only thing the server denied this user (nothing failed quietly on the way)
    acl_log = "".join(node.cli("ACL", "LOG") for node in nodes).splitlines()
    denied = [acl_log[i + 1] for i, field in enumerate(acl_log[:-1]) if field == "object"]
    assert denied == [f"not-{key_prefix}"]
