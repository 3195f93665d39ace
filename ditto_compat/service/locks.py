"""Per-entity locks shared by the Things and Policies command paths."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")

# How often a command is re-run after losing a compare-and-set to another process before giving up.
MAX_CAS_ATTEMPTS = 8


class KeyedLocks:
    """One asyncio lock per entity id, dropped when nobody holds or waits for it, so that writes to one entity
    from this process queue up instead of racing each other into compare-and-set retries."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        lock = self._ref(key)
        try:
            async with lock:
                return await fn()
        finally:
            self._unref(key)

    @asynccontextmanager
    async def holding(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of all ``keys`` at once (a batch of commands over many entities). They are taken in
        sorted order, so two such holders never wait for each other in a cycle."""
        referenced: list[str] = []
        acquired: list[asyncio.Lock] = []
        try:
            for key in sorted(set(keys)):
                lock = self._ref(key)
                referenced.append(key)
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for key in referenced:
                self._unref(key)

    def _ref(self, key: str) -> asyncio.Lock:
        lock, refs = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, refs + 1)
        return lock

    def _unref(self, key: str) -> None:
        lock, refs = self._locks[key]
        if refs <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, refs - 1)
