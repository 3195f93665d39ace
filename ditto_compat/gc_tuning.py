"""The cyclic garbage collector, tuned for a server that holds many long-lived objects.

CPython's default thresholds (700, 10, 10) run a young collection every 700 net allocations and an older
one every few of those. A twin server keeps tens of thousands of long-lived objects (cached Thing states,
compiled enforcers, WebSocket sessions), and applying a connection's batch allocates hundreds of thousands of
short-lived ones, nearly all freed by reference counting, so the collector mostly re-scans live objects:
ingesting a Kafka batch spent about a sixth of its time in it, and its full passes stall the event loop for
tens of milliseconds. Collections are made rarer (the young generation every 50,000 allocations), and what
exists at start-up (modules, the app) is frozen out of every collection. Garbage cycles are still collected.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_server() -> None:
    """Call once the application is built, before it serves."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
