"""The synchronous GLIDE client (valkey-glide-sync) for the API's read path: created once per
container on first use, reused by every invocation, and no event loop anywhere on the way.

Measured side by side (bench/clients.py, `make bench` key C1_*): a glide-sync GET, LRANGE or script call
costs about three quarters of the async client's driven by `run_until_complete`, as a Lambda handler
must drive it, and `import glide_sync` about half of `import glide`. The configuration and the
failure diagnosis are the async client's (`common.valkey_setup`), so both behave alike.

valkey-glide and valkey-glide-sync can live in one process (the tests and `make dev` do it): both load
the same Rust core, the async client talks to it from its event loop and this one with blocking calls,
and neither waits on the other. The API's Lambda artifact ships glide-sync alone.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from glide_sync import GlideClient, GlideClusterClient, GlideClusterClientConfiguration, GlideError, Script

from common.valkey_diagnosis import Diagnosis
from common.valkey_setup import client_configuration, connection_failure

if TYPE_CHECKING:
    from common.config import ValkeySettings

__all__ = ["SyncClient", "SyncValkeyConnection", "sync_lua"]

SyncClient = GlideClient | GlideClusterClient


def sync_lua(source: str) -> Script:
    """A server-side script for the sync client (EVALSHA, loaded when the server lacks it)."""
    return Script(source)  # type: ignore[no-untyped-call]


class SyncValkeyConnection:
    """Creates one client on first use and hands it out; a failed creation is retried on the next call
    and raises CacheUnavailable naming the variables to fix (see `connection_failure`)."""

    def __init__(self, settings: ValkeySettings) -> None:
        self.settings = settings
        self.ready: SyncClient | None = None
        self._diagnosis = Diagnosis(settings)

    @property
    def cluster_mode(self) -> bool:
        return self.settings.cluster_mode

    def client(self) -> SyncClient:
        client = self.ready
        if client is None:
            config = client_configuration(self.settings)
            try:
                if isinstance(config, GlideClusterClientConfiguration):
                    client = GlideClusterClient.create(config)
                else:
                    client = GlideClient.create(config)
            except GlideError as exc:
                raise connection_failure(exc, self.settings, self._diagnosis) from None
            self.ready = client
        return client

    def close(self) -> None:
        client, self.ready = self.ready, None
        if client is not None:
            with contextlib.suppress(GlideError):
                client.close()
