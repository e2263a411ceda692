"""How both GLIDE clients connect, and what we say when they cannot: one place for the configuration
(standalone or cluster, TLS and its CA, ACL credentials, timeouts, reconnects, client name) and for the
diagnosis of failures, shared by the async connection (`common.valkey`, the worker and the CLI) and the
synchronous one (`common.valkey_sync`, the API's read path).

valkey-glide and valkey-glide-sync re-export the same configuration and exception classes from their
shared package `glide_shared` (the identical objects; tests/unit/test_valkey_errors.py pins that), so
they are imported from there and this module loads neither client.

Why a connection failed is often not in GLIDE's error; `common.valkey_diagnosis` asks the network
itself, and `connection_failure` here turns its answer into the one error message. Certificates are
always verified: nothing here disables it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glide_shared import (
    AdvancedGlideClientConfiguration,
    AdvancedGlideClusterClientConfiguration,
    BackoffStrategy,
    GlideClientConfiguration,
    GlideClusterClientConfiguration,
    NodeAddress,
    ServerCredentials,
    TlsAdvancedConfiguration,
)
from glide_shared.exceptions import TimeoutError as GlideTimeoutError
from glide_shared.logger import Level as LogLevel
from glide_shared.logger import Logger

from common.errors import CacheUnavailable

if TYPE_CHECKING:
    from common.config import ValkeySettings
    from common.valkey_diagnosis import Diagnosis

__all__ = [
    "DELETE_IF_EQUAL_LUA",
    "ValkeyAuthError",
    "client_configuration",
    "configure_client_logs",
    "connection_failure",
    "describe_error",
    "is_auth_error",
    "unavailable",
]

# Reconnect quickly: delays of 50, 100, 200, 400, 800 ms, then 800 ms forever. A restarted server is
# back in use within about a second.
_RECONNECT = BackoffStrategy(num_of_retries=4, factor=50, exponent_base=2, jitter_percent=20)

# KEYS: key   ARGV: token. Compare-and-delete in one step: never delete a lock or marker someone else set
# (GET then DEL would, when the key expires and is taken between the two).
DELETE_IF_EQUAL_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def client_configuration(
    settings: ValkeySettings,
) -> GlideClientConfiguration | GlideClusterClientConfiguration:
    """The configuration for `GlideClient.create` (or the cluster client's), for either package."""
    s = settings
    configure_client_logs(s.client_log_level)
    tls_config = None
    if s.tls and s.tls_ca_file:
        # A small file read once per container, before any connection exists.
        tls_config = TlsAdvancedConfiguration(root_pem_cacerts=Path(s.tls_ca_file).read_bytes())
    credentials = ServerCredentials(password=s.password, username=s.username) if s.password else None
    common: dict[str, Any] = {  # the same for both topologies
        "use_tls": s.tls,
        "credentials": credentials,
        "request_timeout": s.request_timeout_ms,
        "reconnect_strategy": _RECONNECT,
        "client_name": s.client_name,
    }
    addresses = [NodeAddress(s.host, s.port)]
    timeout = s.connect_timeout_ms
    if s.cluster_mode:
        advanced = AdvancedGlideClusterClientConfiguration(connection_timeout=timeout, tls_config=tls_config)
        return GlideClusterClientConfiguration(addresses, advanced_config=advanced, **common)
    single = AdvancedGlideClientConfiguration(connection_timeout=timeout, tls_config=tls_config)
    return GlideClientConfiguration(addresses, advanced_config=single, **common)


def unavailable(exc: BaseException, what: str) -> CacheUnavailable:
    """A failed command as the error the API and the worker handle: what we were doing, and why."""
    return CacheUnavailable(f"{what}: {describe_error(exc)}")


def connection_failure(
    exc: BaseException, settings: ValkeySettings, diagnosis: Diagnosis
) -> CacheUnavailable:
    """The error to raise for a failed client creation: one message that names the variables to fix.

    Not logged here: whoever handles the error logs it once (the API as `cache_unavailable`, the
    worker as `refresh_failed`). `diagnosis` runs only when credentials are not the problem.
    """
    s = settings
    where = f"Valkey at {s.host}:{s.port}"
    if is_auth_error(exc):
        return ValkeyAuthError(f"{where} refused the connection: {describe_error(exc)}")
    reason = diagnosis()
    if reason is None:
        reason = describe_error(exc)
        if "timed out" in reason:
            reason = (
                f"the server answers, but the client could not connect within {s.connect_timeout_ms} ms: "
                "raise VALKEY_CONNECT_TIMEOUT_MS"
            )
    return CacheUnavailable(f"cannot connect to {where} (VALKEY_HOST, VALKEY_PORT): {reason}")


class ValkeyAuthError(CacheUnavailable):
    """The server rejected our credentials or our ACL user's permissions: a configuration problem,
    reported with the variables' names and never their values."""


_AUTH_FAILED = re.compile(r"WRONGPASS|invalid username-password pair", re.IGNORECASE)
_AUTH_MISSING = re.compile(r"NOAUTH", re.IGNORECASE)
# GLIDE rewrites the server's NOPERM as "PermissionDenied: User u has no permissions to run the 'x' command"
# (or "...: No permissions to access a key"); inside a script it is "ACL failure in script: User u has...".
_NOPERM = re.compile(
    r"(?:NOPERM|PermissionDenied|ACL failure)(?:.*?run the '(?P<command>[\w|.-]+)' command)?", re.IGNORECASE
)
_BAD_CERTIFICATE = re.compile(r"invalid peer certificate: (?P<why>\w+)", re.IGNORECASE)
_OOM = re.compile(r"\bOOM\b")


def is_auth_error(exc: BaseException) -> bool:
    """True when the server refused our credentials (or wanted some, or the ACL user lacks a permission
    the client needs to connect): a configuration problem, which retrying will not fix."""
    text = str(exc)
    return any(pattern.search(text) for pattern in (_AUTH_FAILED, _AUTH_MISSING, _NOPERM))


def _noperm(match: re.Match[str]) -> str:
    command = match.group("command")
    if command:
        what = f"may not run {command.upper()}"
    elif "access a key" in match.string:
        what = "may not access our keys (its key patterns must cover LEADERBOARD_KEY)"
    else:
        what = "lacks a permission we need"
    return f"permission denied (NOPERM): the ACL user (VALKEY_USERNAME) {what}; see docs/valkey.md"


# The server's words (or rustls'), found wherever GLIDE put them, and what we say instead. First match wins.
_DESCRIPTIONS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_AUTH_FAILED, lambda _: "authentication failed (WRONGPASS): check VALKEY_USERNAME and VALKEY_PASSWORD"),
    (
        _AUTH_MISSING,
        lambda _: (
            "the server requires authentication (NOAUTH): set VALKEY_PASSWORD "
            "(and VALKEY_USERNAME for an ACL user)"
        ),
    ),
    (_NOPERM, _noperm),
    (
        _BAD_CERTIFICATE,
        lambda m: (
            f"TLS: the server's certificate was rejected ({m.group('why')}): set VALKEY_TLS_CA_FILE "
            "to the CA that signed it, or connect with the name it was issued for"
        ),
    ),
    (_OOM, lambda _: "Valkey is out of memory (maxmemory reached)"),
)


def describe_error(exc: BaseException) -> str:
    """A short description of a GLIDE error for logs, naming the variable to check; never a secret.

    GLIDE words the same failure differently per topology (the cluster client wraps the server's reply in
    "Failed to create initial connections - IoError: ..."), so this matches the server's words inside.
    """
    text = str(exc)
    for pattern, describe in _DESCRIPTIONS:
        match = pattern.search(text)
        if match:
            return describe(match)
    if isinstance(exc, GlideTimeoutError):
        return "no answer within VALKEY_REQUEST_TIMEOUT_MS (the server is slow, hung or unreachable)"
    flat = " ".join(text.split())
    return f"{type(exc).__name__}: {flat[:200]}"


_client_log_level: str | None = None


def configure_client_logs(level: str) -> None:
    """GLIDE's core logs to stdout as plain text (not our JSON lines); it is off unless
    VALKEY_CLIENT_LOG_LEVEL asks for it. Our own log line already explains every failure."""
    global _client_log_level  # noqa: PLW0603 - the GLIDE logger is process-wide
    if level != _client_log_level:
        Logger.set_logger_config(getattr(LogLevel, level.upper()))
        _client_log_level = level
