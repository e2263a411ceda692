"""One long-lived event loop per process (= per Lambda container), and the objects bound to it.

Lambda calls the synchronous handler once per event, always on the same thread. `asyncio.run` per
invocation would close the loop each time, and with it every pooled client created on that loop (GLIDE,
aioboto3, httpx, asyncpg). So the process keeps one loop for its whole life and drives it with
`run_until_complete`.

One loop per process is also a hard rule of valkey-glide 2.x: it delivers every response through one
process-wide pipe that is read by the loop of the first client created. A client on a second loop only
hears back while that first loop happens to be running, so two loops in one process hang. We fail fast
instead: `run()` from a second thread raises. The local stack therefore runs each Lambda "container" as
its own process, as Lambda does.

`asyncio` is imported on first use, not at import: the API's handler imports this module for
ContainerScoped and, on a cache hit, never runs a loop (asyncio is ~25 ms of its cold import).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["ContainerScoped", "Lazy", "event_loop", "run"]

T = TypeVar("T")
_loop: asyncio.AbstractEventLoop | None = None
_owner: int | None = None
_guard = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """This process's loop, created on first use by the thread that will drive it."""
    global _loop, _owner  # noqa: PLW0603 - one loop per process, by design
    with _guard:
        if _loop is None or _loop.is_closed():
            import asyncio

            _loop = asyncio.new_event_loop()
            _owner = threading.get_ident()
        elif _owner != threading.get_ident():
            raise RuntimeError(
                "the handler's event loop belongs to another thread: call Lambda handlers from one thread "
                "per process (valkey-glide serves one event loop per process)"
            )
        return _loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on this process's long-lived loop."""
    try:
        loop = event_loop()
    except RuntimeError:
        coro.close()
        raise
    return loop.run_until_complete(coro)


class ContainerScoped(Generic[T]):
    """A lazily built object, one per container (process). `reset()` drops it (tests, config reloads)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None

    def get(self) -> tuple[T, bool]:
        """The object, and whether this call created it (a cold start)."""
        if self._value is not None:
            return self._value, False
        self._value = self._factory()
        return self._value, True

    def reset(self) -> None:
        self._value = None


class Lazy(Generic[T]):
    """A client created on first use and then reused: however many tasks ask for it at the same time,
    it is created once; a failed creation is retried by the next caller (the error reaches every
    caller that was waiting for it)."""

    def __init__(self, factory: Callable[[], Awaitable[T]]) -> None:
        self._factory = factory
        self.value: T | None = None
        self._creating: asyncio.Future[T] | None = None

    async def get(self) -> T:
        if self.value is not None:
            return self.value
        import asyncio  # loaded already: this coroutine runs on a loop

        if self._creating is None:
            self._creating = asyncio.ensure_future(self._factory())
        creating = self._creating
        try:
            value = await asyncio.shield(creating)
        finally:
            if creating.done():
                self._creating = None
        self.value = value
        return value

    def take(self) -> T | None:
        """Forget the value (to close it): the next get() creates a new one."""
        value, self.value = self.value, None
        return value
