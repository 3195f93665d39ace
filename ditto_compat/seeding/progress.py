"""The simulator's progress on stderr: one line rewritten in place on a terminal, a plain line every few
seconds otherwise (logs and CI output stay readable)."""

from __future__ import annotations

import time
from typing import TextIO

from ditto_compat.seeding.transports import Stats

TERMINAL_REFRESH_S = 0.5
PLAIN_REFRESH_S = 5.0


class Progress:
    def __init__(self, stream: TextIO, stats: Stats, *, label: str, twins: int) -> None:
        self.stream = stream
        self.stats = stats
        self.label = label
        self.twins = twins
        self.interactive = stream.isatty()
        self.interval = TERMINAL_REFRESH_S if self.interactive else PLAIN_REFRESH_S
        self.started = time.monotonic()
        self._last_shown = self.started
        self._last_sent = 0
        self._last_time = self.started

    def line(self) -> str:
        now = time.monotonic()
        elapsed = now - self.started
        window = max(now - self._last_time, 1e-6)
        rate = (self.stats.sent - self._last_sent) / window
        self._last_sent, self._last_time = self.stats.sent, now
        text = (
            f"{self.label}: {self.stats.sent} sent, {self.stats.delivered} delivered, {self.stats.errors} errors, "
            f"{rate:.1f} msg/s, {self.twins} twins, {elapsed:.0f} s"
        )
        if self.stats.errors and self.stats.last_error:
            text += f" (last error: {self.stats.last_error[:120]})"
        return text

    def tick(self) -> None:
        """Shows the progress when it is due."""
        now = time.monotonic()
        if now - self._last_shown < self.interval:
            return
        self._last_shown = now
        self._show(self.line())

    def _show(self, text: str) -> None:
        if self.interactive:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        summary = (
            f"{self.label}: done, {self.stats.sent} sent, {self.stats.delivered} delivered, {self.stats.errors} errors "
            f"in {elapsed:.1f} s ({self.stats.sent / elapsed:.1f} msg/s)"
        )
        if self.stats.last_error:
            summary += f"; last error: {self.stats.last_error[:300]}"
        if self.interactive:
            self.stream.write("\r\x1b[K")
        self.stream.write(summary + "\n")
        self.stream.flush()
