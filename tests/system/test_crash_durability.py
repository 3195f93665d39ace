"""Persist before acknowledge (DESIGN.md "One command path"): a SIGKILL loses no acknowledged write.

Eight independent HTTP clients write to a real server process; the server is SIGKILLed while requests are in
flight; a new process on the same data directory must show every write that was answered 2xx, and the journal
must hold exactly the applied writes, with revisions 1..N and no gap or duplicate.

Writes are arranged so that the outcome is exact rather than "at least": every (thing, property) pair has one
writer that sends 1, 2, 3, ... in order and stops at its first failure. So at most the very last write of each
pair is in doubt, the surviving value ``v`` means "writes 1..v were applied", and a thing's revision must be
1 (its creation) plus the sum of those values.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ditto_compat.persistence.factory import SQLITE_FILENAME
from ditto_compat.persistence.sqlite import SqliteStore
from tests.live_server import LiveServer
from tests.system.conftest import ServerFactory

NAMESPACE = "crash.test"
HOT_THINGS = [f"{NAMESPACE}:hot-{i}" for i in range(4)]
SEQUENTIAL_THING = f"{NAMESPACE}:sequential"
HOT_WRITERS = 5  # each writes its own property w<n> on all hot things: contention on the same things
CREATORS = 2  # 5 + 1 sequential writer + 2 creators = 8 concurrent clients
KILL_AFTER_ACKS = 400
MIN_ACKS = 50  # below this the crash proves little: the server was too slow to load
MAX_OPS_PER_WORKER = 20_000  # bounds every loop even if the kill never comes
LOAD_DEADLINE_S = 30.0
DRAIN_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 10.0
PROPS = "features/f/properties"


@dataclass
class Load:
    """What the clients sent and what the server acknowledged, shared by all workers (one event loop)."""

    sent: dict[tuple[str, str], int] = field(default_factory=dict)  # (thing, property) -> highest value sent
    acked: dict[tuple[str, str], int] = field(default_factory=dict)  # (thing, property) -> highest value 2xx
    created_sent: list[str] = field(default_factory=list)
    created_acked: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    acks: int = 0
    in_flight: int = 0
    failures_before_kill: list[str] = field(default_factory=list)
    failures_after_kill: int = 0
    finished_before_kill: int = 0
    killed: bool = False
    enough: asyncio.Event = field(default_factory=asyncio.Event)

    def ack(self) -> None:
        self.acks += 1
        if self.acks >= KILL_AFTER_ACKS:
            self.enough.set()

    def fail(self, what: str) -> None:
        if self.killed:
            self.failures_after_kill += 1
        else:
            self.failures_before_kill.append(what)


async def send(load: Load, request: Awaitable[httpx.Response], what: str) -> bool:
    """One request; True when acknowledged (2xx). Any failure stops the caller: after it, this writer's
    last value is in doubt, so it must not write again (see the module docstring)."""
    load.in_flight += 1
    try:
        response = await request
    except httpx.HTTPError as exc:
        load.fail(f"{what}: {exc!r}")
        return False
    finally:
        load.in_flight -= 1
    load.statuses[response.status_code] += 1
    if not response.is_success:
        load.fail(f"{what}: {response.status_code} {response.text[:300]}")
        return False
    return True


async def property_writer(server: LiveServer, load: Load, things: list[str], prop: str) -> None:
    """Writes 1, 2, 3, ... to ``prop`` of each of ``things`` in turn, one request at a time."""
    async with server.async_client(timeout=REQUEST_TIMEOUT_S) as client:
        for op in range(MAX_OPS_PER_WORKER):
            if load.killed:
                return
            thing = things[op % len(things)]
            value = op // len(things) + 1
            load.sent[(thing, prop)] = value
            url = f"/api/2/things/{thing}/{PROPS}/{prop}"
            if not await send(load, client.put(url, json=value), f"PUT {url} {value}"):
                return
            load.acked[(thing, prop)] = value
            load.ack()
    load.finished_before_kill += 0 if load.killed else 1


async def creator(server: LiveServer, load: Load, index: int) -> None:
    """Creates new Things, one request at a time."""
    async with server.async_client(timeout=REQUEST_TIMEOUT_S) as client:
        for seq in range(MAX_OPS_PER_WORKER):
            if load.killed:
                return
            thing = f"{NAMESPACE}:created-{index}-{seq}"
            load.created_sent.append(thing)
            url = f"/api/2/things/{thing}"
            body = created_body(index, seq)
            if not await send(load, client.put(url, json=body), f"PUT {url}"):
                return
            load.created_acked.append(thing)
            load.ack()
    load.finished_before_kill += 0 if load.killed else 1


def created_body(index: int, seq: int) -> dict[str, Any]:
    return {"attributes": {"creator": index, "seq": seq}}


async def kill_mid_load(server: LiveServer, load: Load) -> int:
    """SIGKILL once enough writes were acknowledged (or at the deadline); returns the requests then in flight."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(load.enough.wait(), LOAD_DEADLINE_S)
    in_flight = load.in_flight
    # Flag first: a failure seen from now on is the crash, not a server error.
    load.killed = True
    server.kill()
    return in_flight


def expected_revision(props: dict[str, Any], writers: list[str]) -> int:
    """1 for the creation plus one per applied property write (see the module docstring)."""
    return 1 + sum(int(props.get(prop, 0)) for prop in writers)


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_sigkill_loses_no_acknowledged_write(
    server_factory: ServerFactory, tmp_path: Path, synchronous: str
) -> None:
    data_dir = tmp_path / "data"
    args = ["--sqlite-synchronous", synchronous]
    server = await asyncio.to_thread(server_factory, data_dir, args=args)
    hot_props = [f"w{n}" for n in range(HOT_WRITERS)]

    async with server.async_client(timeout=REQUEST_TIMEOUT_S) as setup:
        for thing in [*HOT_THINGS, SEQUENTIAL_THING]:
            r = await setup.put(f"/api/2/things/{thing}", json={"features": {"f": {"properties": {}}}})
            assert r.status_code == 201, r.text

    load = Load()
    workers = [
        *(property_writer(server, load, HOT_THINGS, prop) for prop in hot_props),
        property_writer(server, load, [SEQUENTIAL_THING], "p"),
        *(creator(server, load, index) for index in range(CREATORS)),
    ]
    tasks = [asyncio.create_task(w) for w in workers]
    in_flight_at_kill = await kill_mid_load(server, load)
    await asyncio.wait_for(asyncio.gather(*tasks), DRAIN_TIMEOUT_S)

    assert server.returncode == -9
    assert not load.failures_before_kill, f"writes failed before the crash: {load.failures_before_kill[:10]}"
    assert load.acks >= MIN_ACKS, f"only {load.acks} writes acknowledged in {LOAD_DEADLINE_S}s"
    assert load.finished_before_kill == 0 and in_flight_at_kill > 0, "the kill did not hit a running load"
    assert set(load.statuses) <= {201, 204}, f"PUT answered {dict(load.statuses)}; Ditto answers 201 or 204"

    # ---- a new process on the same data: every acknowledged write is there, nothing more
    restarted = await asyncio.to_thread(server_factory, data_dir, args=args)
    revisions: dict[str, int] = {}
    survivors: dict[tuple[str, str], int] = {}
    async with restarted.async_client(timeout=REQUEST_TIMEOUT_S) as client:
        for thing, writers in [(t, hot_props) for t in HOT_THINGS] + [(SEQUENTIAL_THING, ["p"])]:
            r = await client.get(f"/api/2/things/{thing}/{PROPS}")
            assert r.status_code == 200, r.text
            props: dict[str, Any] = r.json()
            for prop in writers:
                survived = survivors[(thing, prop)] = int(props.get(prop, 0))
                acked = load.acked.get((thing, prop), 0)
                sent = load.sent.get((thing, prop), 0)
                assert acked <= survived <= sent, (
                    f"{thing} {prop}: acked {acked}, sent {sent}, found {survived}"
                )
            r = await client.get(f"/api/2/things/{thing}", params={"fields": "_revision"})
            assert r.status_code == 200, r.text
            revisions[thing] = r.json()["_revision"]
            assert revisions[thing] == expected_revision(props, writers), (thing, props)

        created_found: dict[str, int] = {}
        for thing in load.created_sent:
            r = await client.get(f"/api/2/things/{thing}", params={"fields": "thingId,attributes,_revision"})
            if thing in load.created_acked:
                assert r.status_code == 200, (
                    f"acknowledged creation of {thing} lost: {r.status_code} {r.text}"
                )
            elif r.status_code == 404:
                continue  # in flight at the crash and not applied: allowed
            assert r.status_code == 200, r.text
            body = r.json()
            _, _, name = thing.partition(":")
            index, seq = (int(part) for part in name.split("-")[1:])
            assert body == {"thingId": thing, **created_body(index, seq), "_revision": 1}
            created_found[thing] = 1
    await asyncio.to_thread(restarted.stop)

    # ---- the journal behind it: revisions 1..N, each property write exactly once and in order
    store = SqliteStore(os.path.join(data_dir, SQLITE_FILENAME), synchronous=synchronous)
    await store.open()
    try:
        for thing, revision in {**revisions, **created_found}.items():
            journal = await store.journal("things", thing)
            assert [e["revision"] for e in journal] == list(range(1, revision + 1)), thing
            state = await store.get("things", thing)
            assert state is not None and state.revision == revision, thing
            # Creation and its policy are one atomic commit: a Thing never survives without its policy.
            policy = await store.get("policies", thing)
            assert policy is not None and policy.exists, f"policy of {thing} missing"
        for thing, writers in [(t, hot_props) for t in HOT_THINGS] + [(SEQUENTIAL_THING, ["p"])]:
            journal = await store.journal("things", thing)
            for prop in writers:
                values = [e.get("value") for e in journal if e["path"] == f"/{PROPS}/{prop}"]
                assert values == list(range(1, survivors[(thing, prop)] + 1)), (thing, prop, values)
    finally:
        await store.close()
