"""What GLIDE raises, as recorded from glide 2.6 against valkey-server 8.1 and redis-server 7.0, and what
we say about it; and the connection settings each function gets by default.

The integration tests in tests/connectivity produce these errors on real servers; these pin down the
wording GLIDE uses per topology, so that a change in it shows up here first.
"""

from __future__ import annotations

import pytest
from glide import ClosingError, RequestError
from glide import TimeoutError as GlideTimeoutError

from common.config import ApiSettings, ConfigError, WorkerSettings
from common.valkey import describe_error, is_auth_error

_CLUSTER = (
    "Failed to create initial connections - IoError: Failed to refresh both connections - IoError: Node: "
    'ReadyToDialAddress("127.0.0.1:41236") received errors: `{0}`, `{0}`'
)
WRONGPASS = "WRONGPASS: invalid username-password pair or user is disabled."
NOAUTH = (
    "NOAUTH: HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH"
)


@pytest.mark.parametrize(
    "error",
    [
        ClosingError(f"Received error for address `127.0.0.1:41235`: {WRONGPASS}\n"),
        ClosingError(_CLUSTER.format(WRONGPASS)),
    ],
    ids=["standalone", "cluster"],
)
def test_a_wrong_password_names_both_variables(error: Exception) -> None:
    assert is_auth_error(error)
    assert describe_error(error) == (
        "authentication failed (WRONGPASS): check VALKEY_USERNAME and VALKEY_PASSWORD"
    )


@pytest.mark.parametrize(
    "error",
    [
        ClosingError(f"Received error for address `127.0.0.1:41235`: {NOAUTH}\n"),
        ClosingError(_CLUSTER.format(NOAUTH)),
    ],
    ids=["standalone", "cluster"],
)
def test_a_missing_password_says_to_set_one(error: Exception) -> None:
    assert is_auth_error(error)
    assert "set VALKEY_PASSWORD" in describe_error(error)


def test_a_missing_acl_permission_names_the_command_not_the_user() -> None:
    error = RequestError(
        "An error was signalled by the server: - PermissionDenied: User noscripts has no permissions "
        "to run the 'evalsha' command"
    )
    assert is_auth_error(error)  # at connection time, e.g. an access string without INFO
    described = describe_error(error)
    assert "NOPERM" in described
    assert "EVALSHA" in described
    assert "VALKEY_USERNAME" in described
    assert "noscripts" not in described


def test_a_command_denied_inside_a_script_is_named_too() -> None:
    error = RequestError(
        "An error was signalled by the server: - ResponseError: ACL failure in script: User leaderboard has "
        "no permissions to run the 'time' command script: 7f0a7733423b5fd039d2893ca180895e21a99d7a"
    )
    assert describe_error(error).startswith(
        "permission denied (NOPERM): the ACL user (VALKEY_USERNAME) may not run TIME"
    )


def test_a_key_outside_the_acl_key_patterns_points_at_leaderboard_key() -> None:
    error = RequestError(
        "An error was signalled by the server: - PermissionDenied: No permissions to access a key"
    )
    assert "its key patterns must cover LEADERBOARD_KEY" in describe_error(error)


def test_an_untrusted_certificate_seen_by_the_cluster_client_says_tls() -> None:
    error = ClosingError(_CLUSTER.format("invalid peer certificate: UnknownIssuer"))
    assert not is_auth_error(error)
    described = describe_error(error)
    assert described.startswith("TLS: the server's certificate was rejected (UnknownIssuer)")
    assert "VALKEY_TLS_CA_FILE" in described


def test_the_standalone_clients_timed_out_is_not_mistaken_for_anything() -> None:
    # An untrusted certificate, a refused port and a hung server all look like this to the standalone
    # client; ValkeyConnection asks the network (diagnose) instead of guessing from it.
    error = ClosingError("Received error for address `127.0.0.1:41234`: timed out\n")
    assert not is_auth_error(error)
    assert describe_error(error) == "ClosingError: Received error for address `127.0.0.1:41234`: timed out"


def test_a_request_timeout_names_its_variable() -> None:
    assert "VALKEY_REQUEST_TIMEOUT_MS" in describe_error(GlideTimeoutError("timed out"))


def test_out_of_memory_is_recognised_but_not_inside_other_words() -> None:
    oom = RequestError("OOM command not allowed when used memory > 'maxmemory'.")
    assert describe_error(oom) == "Valkey is out of memory (maxmemory reached)"
    assert "out of memory" not in describe_error(RequestError("ERR no such key in BLOOM filter"))


def test_connection_timeouts_default_per_function_and_are_configurable() -> None:
    # Given only the required variables, Then the API fails fast and the worker has headroom
    api = ApiSettings.from_env({"VALKEY_HOST": "cache", "REFRESH_QUEUE_URL": "https://sqs.local/1/q"})
    worker = WorkerSettings.from_env({"VALKEY_HOST": "cache", "DATABASE_URL": "postgresql://db/x"})
    assert (api.valkey.request_timeout_ms, api.valkey.connect_timeout_ms) == (250, 1000)
    assert (worker.valkey.request_timeout_ms, worker.valkey.connect_timeout_ms) == (2000, 2000)
    # And each function can set its own
    tuned = ApiSettings.from_env(
        {
            "VALKEY_HOST": "cache",
            "REFRESH_QUEUE_URL": "https://sqs.local/1/q",
            "VALKEY_REQUEST_TIMEOUT_MS": "400",
            "VALKEY_CONNECT_TIMEOUT_MS": "3000",
        }
    )
    assert (tuned.valkey.request_timeout_ms, tuned.valkey.connect_timeout_ms) == (400, 3000)
    # But not to nothing
    with pytest.raises(ConfigError, match="VALKEY_CONNECT_TIMEOUT_MS"):
        ApiSettings.from_env(
            {
                "VALKEY_HOST": "cache",
                "REFRESH_QUEUE_URL": "https://sqs.local/1/q",
                "VALKEY_CONNECT_TIMEOUT_MS": "0",
            }
        )


def test_both_glide_packages_share_the_configuration_and_exception_classes() -> None:
    # common.valkey_setup builds one configuration for either client and describes either's errors,
    # which holds only while both packages re-export glide_shared's classes
    import glide
    import glide_sync

    shared = ["GlideClientConfiguration", "GlideClusterClientConfiguration", "TlsAdvancedConfiguration"]
    shared += ["ServerCredentials", "BackoffStrategy", "GlideError", "TimeoutError", "ClosingError"]
    for name in shared:
        assert getattr(glide, name) is getattr(glide_sync, name), name
