"""WAL checkpoints of the SQLite store, on a thread of their own.

In WAL mode a commit appends the pages it changed to the ``-wal`` file; a checkpoint copies them back into the
database file and, with ``synchronous=NORMAL``, syncs it to disk. SQLite's automatic checkpoint runs inside the
COMMIT of whichever connection crosses the threshold, i.e. on the store's writer thread, so every caller of that
round waited for the copy and the ``fsync``: a Kafka batch over a thousand Things dirties about as many pages,
and half of its commit time was the checkpoint.

Here the writer turns the automatic checkpoint off and tells a :class:`WalCheckpointer` after each round; the
checkpointer runs a PASSIVE checkpoint on its own connection (it never blocks the writer or readers, and copies
what is committed), while the writer goes on with the next round. The call stays inside SQLite for its whole
duration, so it runs on the other core without taking Python's GIL. When it finishes before the writer starts
its next transaction (between rounds the writer waits for the next batch to be decided), SQLite starts the WAL
over from its beginning, so it stays small. If writes ever outpace it, the writer checkpoints itself once the
WAL holds more than :data:`WRITER_CHECKPOINT_FRAMES` pages, as SQLite's own automatic checkpoint would.

Durability is unchanged: a commit is in the WAL when the caller learns of it, whoever checkpoints it later.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Final

log = logging.getLogger(__name__)

# Pages in the WAL from which the writer checkpoints by itself (SQLite's automatic threshold is 1,000 pages;
# the checkpointer normally keeps the WAL far below this).
WRITER_CHECKPOINT_FRAMES: Final = 20_000
_BUSY_TIMEOUT_MS: Final = 5_000


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own thread after the writer's commits (coalesced: one
    checkpoint for however many commits happened while the previous one ran)."""

    def __init__(self, path: str, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._wanted = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Written by the checkpointer thread only; read by the writer and for metrics.
        self.checkpoints = 0
        self.failures = 0
        # pages in the WAL and pages of it copied back, as the last checkpoint reported
        self.wal_frames = 0
        self.checkpointed_frames = 0

    @property
    def backlog_frames(self) -> int:
        """Pages of the WAL not yet copied into the database file, as of the last checkpoint."""
        return max(0, self.wal_frames - self.checkpointed_frames)

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        thread.start()
        self._thread = thread

    def committed(self) -> None:
        """The writer committed a round: checkpoint soon (never waits)."""
        self._wanted.set()

    def stop(self) -> None:
        """Finish the checkpoint under way (if any) and end the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._wanted.set()
        thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            log.exception("WAL checkpointer cannot open %s; the writer checkpoints by itself", self._path)
            return
        try:
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    return
                self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # e.g. the disk is full: the writer's own threshold still bounds the WAL
            self.failures += 1
            log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
            return
        self.checkpoints += 1
        if row is not None:
            _busy, frames, copied = row
            self.wal_frames, self.checkpointed_frames = int(frames), int(copied)
