"""One process owns a SQLite data file, and therefore knows the revision of every policy it wrote.

SQLite is the embedded, single-process backend (DESIGN.md "Storage"; several processes scale out on MongoDB). A
second server on the same file would not see the first one's events, and both would open every connection and
consume its messages twice. :func:`lock_data_file` makes that an error at start-up instead: the store holds an
exclusive ``flock`` on ``<file>.lock`` while it is open (the kernel drops it when the process ends, also on a
crash).

Owning the file lets the store answer :meth:`~ditto_compat.persistence.sqlite.SqliteStore.revisions` of policies
from what it read or committed itself (:class:`KnownRevisions`) instead of querying them: the enforcer cache asks
for the revisions of every policy of a batch (a thousand Things, a thousand policies) to notice a change made
elsewhere, and with one owner there is no elsewhere.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Sequence
from typing import Final

# Policies whose revision is remembered; beyond it the memory starts over (and is filled again by queries).
MAX_KNOWN_REVISIONS: Final = 200_000


class DataFileInUse(Exception):
    """Another process holds the data file."""


def lock_data_file(path: str) -> int:
    """Hold ``<path>.lock`` exclusively; the returned descriptor keeps the lock until :func:`unlock_data_file`."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataFileInUse(f"{path} is in use by another ditto-compat process") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock_data_file(fd: int) -> None:
    os.close(fd)  # closing the descriptor releases the flock


class KnownRevisions:
    """The revisions of live policies as this process last read or committed them (``None``: not live)."""

    def __init__(self, capacity: int = MAX_KNOWN_REVISIONS) -> None:
        self._capacity = capacity
        self._revisions: dict[str, int | None] = {}

    def split(self, ids: Sequence[str]) -> tuple[dict[str, int], list[str]]:
        """``(revisions of the known live ones, ids not known)``."""
        known: dict[str, int] = {}
        unknown: list[str] = []
        revisions = self._revisions
        for entity_id in ids:
            if entity_id in revisions:
                revision = revisions[entity_id]
                if revision is not None:
                    known[entity_id] = revision
            else:
                unknown.append(entity_id)
        return known, unknown

    def read(self, asked: Iterable[str], found: dict[str, int]) -> None:
        """A query for ``asked`` found these live ones (the others are not live)."""
        self._make_room()
        for entity_id in asked:
            self._revisions[entity_id] = found.get(entity_id)

    def committed(self, entity_id: str, revision: int, live: bool) -> None:
        self._make_room()
        self._revisions[entity_id] = revision if live else None

    def forget(self, entity_ids: Iterable[str]) -> None:
        """Not known whether these were written (a commit that failed as a whole): read them again."""
        for entity_id in entity_ids:
            self._revisions.pop(entity_id, None)

    def _make_room(self) -> None:
        if len(self._revisions) >= self._capacity:
            self._revisions.clear()
