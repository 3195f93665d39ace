"""Per-entity locks shared by the Things and Policies command paths."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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
        lock, refs = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, refs + 1)
        try:
            async with lock:
                return await fn()
        finally:
            lock, refs = self._locks[key]
            if refs <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, refs - 1)
