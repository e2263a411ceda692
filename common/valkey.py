"""The GLIDE client: created once per container (per thread, in the local stack) and reused.

Standalone and cluster clients expose the same commands we use, and every multi-key operation goes
through a Lua script (whose keys share one hash slot), so nothing above this module knows the topology.

Failure behaviour that shapes the defaults (measured with GLIDE 2.6): a dead server makes every call
wait the full `request_timeout` before `glide.TimeoutError`, and the client reconnects by itself. So
the API uses a small request timeout and the worker a larger one; both are configurable.

Why a connection failed is often not in GLIDE's error: the standalone client reports an untrusted
certificate, a refused port, an unknown host name and a plaintext client on a TLS port all as "timed out"
after the whole connect timeout (upstream: valkey-io/valkey-glide-ruby#268). So when creating the client
fails for a reason other than credentials, `diagnose()` asks the network itself, once per container, and
the error names the variable to fix. Certificates are always verified: nothing here disables it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from glide import (
    AdvancedGlideClientConfiguration,
    AdvancedGlideClusterClientConfiguration,
    BackoffStrategy,
    GlideClient,
    GlideClientConfiguration,
    GlideClusterClient,
    GlideClusterClientConfiguration,
    GlideError,
    Logger,
    LogLevel,
    NodeAddress,
    Script,
    ServerCredentials,
    TlsAdvancedConfiguration,
)
from glide import TimeoutError as GlideTimeoutError

from common.errors import CacheUnavailable
from common.runtime import Lazy

if TYPE_CHECKING:
    from glide import TGlideClient

    from common.config import ValkeySettings

__all__ = [
    "DELETE_IF_EQUAL",
    "ValkeyAuthError",
    "ValkeyConnection",
    "describe_error",
    "diagnose",
    "is_auth_error",
    "lua",
]

# Reconnect quickly: delays of 50, 100, 200, 400, 800 ms, then 800 ms forever. A restarted server is
# back in use within about a second.
_RECONNECT = BackoffStrategy(num_of_retries=4, factor=50, exponent_base=2, jitter_percent=20)


def lua(source: str) -> Script:
    """A server-side script; GLIDE sends EVALSHA and loads the script when the server lacks it."""
    return Script(source)  # type: ignore[no-untyped-call]


# KEYS: key   ARGV: token. Compare-and-delete in one step: never delete a lock or marker someone else set
# (GET then DEL would, when the key expires and is taken between the two).
DELETE_IF_EQUAL = lua(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)


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


# A TLS server that reads plaintext may answer with a TLS record (an alert, 21) before it hangs up.
_TLS_RECORD_TYPES = frozenset({21, 22})


async def diagnose(settings: ValkeySettings) -> str | None:
    """Why can this process not talk to Valkey? Words an operator can act on, or None if nothing is wrong.

    One plain look at the endpoint, within VALKEY_CONNECT_TIMEOUT_MS: resolve and open a TCP connection,
    do the TLS handshake with the same trust as the client (the CA file, else the system's store) and the
    same host name check, then send `INFO cluster` and read the start of the answer. Only called after a
    failure, so a failed cold start costs up to twice the connect timeout, and a healthy one nothing.
    """
    progress: list[str] = []
    try:
        async with asyncio.timeout(settings.connect_timeout_ms / 1000):
            reply = await _look(settings, progress)
    except (OSError, TimeoutError) as exc:  # ssl errors are OSErrors
        stage = progress[-1] if progress else "connect"
        if stage == "answer" and isinstance(exc, ConnectionError):
            return _hung_up(settings)
        return _network_problem(exc, stage, settings)
    if not reply or reply[0] in _TLS_RECORD_TYPES:
        return _hung_up(settings)
    if settings.cluster_mode and b"cluster_enabled:0" in reply:
        return "the server is not in cluster mode: set VALKEY_CLUSTER_MODE=false"
    return None


def _hung_up(settings: ValkeySettings) -> str:
    """The server closed (or reset) the connection instead of answering INFO."""
    if not settings.tls:
        return "the server hung up without answering: it requires TLS (set VALKEY_TLS=true)"
    return "the server hung up without answering"


async def _look(settings: ValkeySettings, progress: list[str]) -> bytes:
    progress.append("connect")
    reader, writer = await asyncio.open_connection(settings.host, settings.port)
    try:
        if settings.tls:
            progress.append("tls")
            # Reads the CA file: small, once, and only on the failure path.
            context = ssl.create_default_context(cafile=settings.tls_ca_file)
            await writer.start_tls(context, server_hostname=settings.host)
        progress.append("answer")
        writer.write(b"INFO cluster\r\n")
        return await reader.read(512)
    finally:
        writer.transport.abort()


def _network_problem(exc: BaseException, stage: str, settings: ValkeySettings) -> str:
    ms = settings.connect_timeout_ms
    if isinstance(exc, TimeoutError):
        problem = {
            "connect": f"no TCP connection within {ms} ms (VALKEY_CONNECT_TIMEOUT_MS): check VALKEY_HOST, "
            "VALKEY_PORT and the network path (VPC subnets, security groups)",
            "tls": f"no TLS handshake within {ms} ms: the endpoint may not speak TLS "
            "(VALKEY_TLS=false is for a plaintext server)",
            "answer": f"the server accepted the connection but did not answer within {ms} ms: "
            "it is hung or overloaded",
        }[stage]
    elif isinstance(exc, socket.gaierror):
        problem = "the host name in VALKEY_HOST does not resolve (DNS)"
    elif isinstance(exc, ConnectionRefusedError):
        problem = "connection refused: nothing listens at VALKEY_HOST:VALKEY_PORT"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        problem = _certificate_problem(exc, settings)
    elif isinstance(exc, ssl.SSLError):
        problem = f"the TLS handshake failed ({exc.reason}): is TLS enabled on this endpoint? (VALKEY_TLS)"
    elif stage == "tls":
        problem = "the server hung up during the TLS handshake: is TLS enabled on it? (VALKEY_TLS)"
    else:
        problem = (
            f"cannot reach VALKEY_HOST:VALKEY_PORT ({getattr(exc, 'strerror', None) or type(exc).__name__})"
        )
    return problem


def _certificate_problem(exc: ssl.SSLCertVerificationError, settings: ValkeySettings) -> str:
    why = exc.verify_message or exc.reason or "verification failed"
    if "mismatch" in why.lower():
        advice = (
            "the certificate does not name VALKEY_HOST; use the endpoint name the certificate was issued "
            "for (for ElastiCache, the endpoint it shows, not an IP address or a CNAME)"
        )
    elif settings.tls_ca_file:
        advice = "the certificate is not signed by the CA in VALKEY_TLS_CA_FILE"
    else:
        advice = (
            "the certificate is not signed by a CA in the system trust store: set VALKEY_TLS_CA_FILE "
            "to the PEM file of the CA that signed it"
        )
    return f"TLS certificate verification failed ({why}): {advice}"


_client_log_level: str | None = None


def _configure_client_logs(level: str) -> None:
    """GLIDE's core logs to stdout as plain text (not our JSON lines); it is off unless
    VALKEY_CLIENT_LOG_LEVEL asks for it. Our own log line already explains every failure."""
    global _client_log_level  # noqa: PLW0603 - the GLIDE logger is process-wide
    if level != _client_log_level:
        Logger.set_logger_config(getattr(LogLevel, level.upper()))
        _client_log_level = level


class ValkeyConnection:
    """Lazily creates one client and hands it out. A failed creation is retried on the next call."""

    def __init__(self, settings: ValkeySettings) -> None:
        self.settings = settings
        self._client: Lazy[TGlideClient] = Lazy(self._create)
        self._diagnosis: str | None = None

    @property
    def cluster_mode(self) -> bool:
        return self.settings.cluster_mode

    @property
    def ready(self) -> TGlideClient | None:
        """The client if it exists already: lets the hot path skip an await (see LeaderboardCache)."""
        return self._client.value

    async def client(self) -> TGlideClient:
        return await self._client.get()

    async def _create(self) -> TGlideClient:
        s = self.settings
        _configure_client_logs(s.client_log_level)
        tls_config = None
        if s.tls and s.tls_ca_file:
            # A small file read once per container, before any connection exists.
            ca = Path(s.tls_ca_file).read_bytes()  # noqa: ASYNC240
            tls_config = TlsAdvancedConfiguration(root_pem_cacerts=ca)
        credentials = ServerCredentials(password=s.password, username=s.username) if s.password else None
        addresses = [NodeAddress(s.host, s.port)]
        try:
            client: TGlideClient
            if s.cluster_mode:
                client = await GlideClusterClient.create(
                    GlideClusterClientConfiguration(
                        addresses,
                        use_tls=s.tls,
                        credentials=credentials,
                        request_timeout=s.request_timeout_ms,
                        reconnect_strategy=_RECONNECT,
                        client_name=s.client_name,
                        advanced_config=AdvancedGlideClusterClientConfiguration(
                            connection_timeout=s.connect_timeout_ms, tls_config=tls_config
                        ),
                    )
                )
            else:
                client = await GlideClient.create(
                    GlideClientConfiguration(
                        addresses,
                        use_tls=s.tls,
                        credentials=credentials,
                        request_timeout=s.request_timeout_ms,
                        reconnect_strategy=_RECONNECT,
                        client_name=s.client_name,
                        advanced_config=AdvancedGlideClientConfiguration(
                            connection_timeout=s.connect_timeout_ms, tls_config=tls_config
                        ),
                    )
                )
        except GlideError as exc:
            raise await self._explain(exc) from None
        return client

    async def _explain(self, exc: GlideError) -> CacheUnavailable:
        """The error to raise for a failed creation: one message that names the variables to fix.

        Not logged here: whoever handles the error logs it once (the API as `cache_unavailable`, the
        worker as `refresh_failed`). A diagnosis is kept for the container's later attempts, so that an
        unreachable endpoint costs the extra look once, not on every request.
        """
        s = self.settings
        where = f"Valkey at {s.host}:{s.port}"
        if is_auth_error(exc):
            return ValkeyAuthError(f"{where} refused the connection: {describe_error(exc)}")
        if self._diagnosis is None:
            self._diagnosis = await diagnose(s)
        reason = self._diagnosis
        if reason is None:
            reason = describe_error(exc)
            if "timed out" in reason:
                reason = (
                    f"the server answers, but the client could not connect within {s.connect_timeout_ms} ms: "
                    "raise VALKEY_CONNECT_TIMEOUT_MS"
                )
        return CacheUnavailable(f"cannot connect to {where} (VALKEY_HOST, VALKEY_PORT): {reason}")

    async def close(self) -> None:
        client = self._client.take()
        if client is not None:
            with contextlib.suppress(GlideError):
                await client.close()
