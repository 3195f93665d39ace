"""What the client adapter tests share: an inbound handler that records what it was given (and can be told to
fail), and waiting on a condition with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from ditto_compat.connectivity.external import ExternalMessage

DEADLINE_S = 15.0


class RecordingHandler:
    """An ``InboundHandler`` keeping every message it returned for; ``fail_when`` makes it raise instead."""

    def __init__(self, fail_when: Callable[[ExternalMessage], bool] | None = None) -> None:
        self.handled: list[ExternalMessage] = []
        self.failed: list[ExternalMessage] = []
        self.batch_sizes: list[int] = []
        self._fail_when = fail_when
        self._changed = asyncio.Event()

    async def __call__(self, batch: Sequence[ExternalMessage]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            for message in batch:
                if self._fail_when is not None and self._fail_when(message):
                    self.failed.extend(batch)
                    raise RuntimeError(f"refusing {message.text_payload!r}")
            self.handled.extend(batch)
        finally:
            self._changed.set()

    @property
    def texts(self) -> list[str | None]:
        return [message.text_payload for message in self.handled]

    async def wait_until(self, condition: Callable[[], bool], within_s: float = DEADLINE_S) -> None:
        deadline = time.monotonic() + within_s
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {within_s}s; handled: {self.texts[-20:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for_count(self, count: int, within_s: float = DEADLINE_S) -> None:
        await self.wait_until(lambda: len(self.handled) >= count, within_s)


async def eventually(condition: Callable[[], bool], what: str, within_s: float = DEADLINE_S) -> None:
    """Polls ``condition`` (cheap, in-memory) until true or the deadline passes."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {within_s}s: {what}")
        await asyncio.sleep(0.02)
