"""The GLIDE client: created once per container (per thread, in the local stack) and reused.

Standalone and cluster clients expose the same commands we use, and every multi-key operation goes
through a Lua script (whose keys share one hash slot), so nothing above this module knows the topology.

Failure behaviour that shapes the defaults (see FACTS.md): a dead server makes every call wait the full
`request_timeout` before `glide.TimeoutError`, and the client reconnects by itself. So the API uses a
small request timeout and the worker a larger one; both are configurable.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    NodeAddress,
    Script,
    ServerCredentials,
    TlsAdvancedConfiguration,
)

from common.errors import CacheUnavailable
from common.logs import get_logger

if TYPE_CHECKING:
    from glide import TGlideClient

    from common.config import ValkeySettings

__all__ = ["DELETE_IF_EQUAL", "ValkeyAuthError", "ValkeyConnection", "describe_error", "lua"]

log = get_logger(__name__)

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
    """The server rejected our credentials: a configuration problem, reported with the variable's name."""


def describe_error(exc: BaseException) -> str:
    """A short, value-free description of a GLIDE error for logs and CLI messages."""
    text = str(exc)
    upper = text.upper()
    if any(marker in upper for marker in ("WRONGPASS", "NOAUTH", "AUTHENTICATION")):
        return "authentication failed: check VALKEY_USERNAME and VALKEY_PASSWORD"
    if "OOM" in upper:
        return "Valkey is out of memory (maxmemory reached)"
    return f"{type(exc).__name__}: {text[:200]}"


class ValkeyConnection:
    """Lazily creates one client and hands it out. A failed creation is retried on the next call."""

    def __init__(self, settings: ValkeySettings) -> None:
        self.settings = settings
        self._client: TGlideClient | None = None
        self._creating: asyncio.Future[TGlideClient] | None = None

    @property
    def cluster_mode(self) -> bool:
        return self.settings.cluster_mode

    async def client(self) -> TGlideClient:
        if self._client is not None:
            return self._client
        if self._creating is None:
            self._creating = asyncio.ensure_future(self._create())
        creating = self._creating
        try:
            client = await asyncio.shield(creating)
        finally:
            if creating.done():
                self._creating = None
        self._client = client
        return client

    async def _create(self) -> TGlideClient:
        s = self.settings
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
            reason = describe_error(exc)
            log.error("valkey_connect_failed", host=s.host, port=s.port, tls=s.tls, reason=reason)
            if reason.startswith("authentication failed"):
                raise ValkeyAuthError(reason) from None
            raise CacheUnavailable(f"cannot connect to Valkey at {s.host}:{s.port}: {reason}") from None
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(GlideError):
                await client.close()
