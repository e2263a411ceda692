"""The async GLIDE client (the worker and the operator's CLI): created once per container and reused.

Standalone and cluster clients expose the same commands we use, and every multi-key operation goes
through a Lua script (whose keys share one hash slot), so nothing above this module knows the topology.
The API's read path uses the synchronous client instead (`common.valkey_sync`); both are configured,
and their failures explained, by `common.valkey_setup`.

Failure behaviour that shapes the defaults (measured with GLIDE 2.6): a dead server makes every call
wait the full `request_timeout` before `glide.TimeoutError`, and the client reconnects by itself. So
the API uses a small request timeout and the worker a larger one; both are configurable.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from glide import GlideClient, GlideClusterClient, GlideClusterClientConfiguration, GlideError, Script

from common.runtime import Lazy
from common.valkey_diagnosis import Diagnosis, diagnose
from common.valkey_setup import (
    DELETE_IF_EQUAL_LUA,
    ValkeyAuthError,
    client_configuration,
    connection_failure,
    describe_error,
    is_auth_error,
)

if TYPE_CHECKING:
    from glide import TGlideClient

    from common.config import ValkeySettings
    from common.errors import CacheUnavailable

__all__ = [
    "DELETE_IF_EQUAL",
    "ValkeyAuthError",
    "ValkeyConnection",
    "describe_error",
    "diagnose",
    "is_auth_error",
    "lua",
]


def lua(source: str) -> Script:
    """A server-side script; GLIDE sends EVALSHA and loads the script when the server lacks it."""
    return Script(source)  # type: ignore[no-untyped-call]


DELETE_IF_EQUAL = lua(DELETE_IF_EQUAL_LUA)


class ValkeyConnection:
    """Lazily creates one client and hands it out. A failed creation is retried on the next call."""

    def __init__(self, settings: ValkeySettings) -> None:
        self.settings = settings
        self._client: Lazy[TGlideClient] = Lazy(self._create)
        self._diagnosis = Diagnosis(settings)

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
        # The CA file is read here: small, once per container, before any connection exists.
        config = client_configuration(self.settings)
        try:
            if isinstance(config, GlideClusterClientConfiguration):
                return await GlideClusterClient.create(config)
            return await GlideClient.create(config)
        except GlideError as exc:
            raise await self._explain(exc) from None

    async def _explain(self, exc: GlideError) -> CacheUnavailable:
        """See `connection_failure`; the diagnosis uses blocking sockets, so it runs in a thread."""
        return await asyncio.to_thread(connection_failure, exc, self.settings, self._diagnosis)

    async def close(self) -> None:
        client = self._client.take()
        if client is not None:
            with contextlib.suppress(GlideError):
                await client.close()
