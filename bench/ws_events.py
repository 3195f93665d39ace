"""WebSocket event fan-out benchmark: twin events of HTTP writes delivered to many ``/ws/2`` subscribers.

Starts ``ditto-compat serve`` (SQLite, fresh temporary data dir, user ditto/ditto) and runs two phases, each on a
fresh server:

1. ``--subscribers`` (100) WebSocket sessions send a bare ``START-SEND-EVENTS`` and wait for its ``:ACK``; then
   ``--rate`` (100) feature-property PUTs per second over HTTP, spread round-robin over ``--things`` (100)
   things, for ``--duration`` seconds. Every subscriber must receive every event.
2. ``--filtered-subscribers`` (1,000) sessions send ``START-SEND-EVENTS?filter=eq(attributes/group,<g>)&
   extraFields=attributes/group`` with ``g`` in 0..9, so that each one matches 10 % of the things (thing ``i`` has
   ``group = i % 10``); the same load. The server's RSS is read before connecting, with the 1,000 idle sessions
   connected, and after the run.

Each PUT's value is ``{"t": <CLOCK_MONOTONIC ns when sent>, "s": <sequence number>}``, so a subscriber measures
the end-to-end latency (HTTP request sent -> event frame received) from the frame alone, and counts by sequence
number which events it did not get. It also checks that the revisions it sees per thing increase without gaps.
Prints p50/p99, delivered frames/s, missing events, CPU and RSS figures against the targets (reported, not
enforced): p99 <= 50 ms, no drops at 10,000 delivered frames/s, <= 100 kB per idle session.

Client and server share the machine (2 cores), so the client must cost clearly less per frame than the server it
measures, or its own backlog shows up as latency. So the subscribers use ``bench/raw_ws.py`` by default
(``--client raw``): a WebSocket client on ``asyncio.Protocol`` that parses frames in ``data_received`` and does the
per-frame accounting in a synchronous callback (``--client websockets``, the ``websockets`` client, costs about 1.6
times its CPU); the PUTs go over plain keep-alive sockets (``PutSender``, not httpx); and the objects of the set-up
are frozen out of the garbage collector's reach before the load. The server negotiates permessage-deflate only
when started with ``--ws-compression`` (``--server-compression`` here), and only the ``websockets`` client offers it.

    .venv/bin/python bench/ws_events.py                    # 20 s per phase
    .venv/bin/python bench/ws_events.py --phase 2 --duration 10 --client websockets --server-compression

Every process is stopped by its PID; all traffic goes to 127.0.0.1. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_put import (
    AUTHORIZATION,
    HOST,
    Server,
    free_port,
    machine_busy_seconds,
    percentile,
    wait_for_quiet,
)
from http_put import _read_response as read_http_response
from raw_ws import RawWebSocket

NAMESPACE = "bench"
FEATURE, PROPERTY = "f", "p"
GROUPS = 10  # thing i has attributes/group = i % GROUPS; a filtered subscriber matches one group
CONNECT_CONCURRENCY = 50
OPEN_TIMEOUT_S = 30.0
FRAME_WAIT_S = 10.0
DRAIN_TIMEOUT_S = 15.0
HTTP_CONNECTIONS = 16
HTTP_TIMEOUT_S = 30.0

TARGET_P99_MS = 50.0
TARGET_FRAMES_PER_S = 10_000.0
TARGET_KB_PER_SESSION = 100.0

Compression = Literal["deflate", "none"]
ClientKind = Literal["raw", "websockets"]
T = TypeVar("T")

# Sender and subscribers read the same clock: CLOCK_MONOTONIC, which on Linux is one system-wide clock, so the
# latency stays right if sender and subscribers ever run in different processes (perf_counter_ns is the same
# clock on Linux, but Python only promises that within one process).
clock = time.monotonic_ns


@dataclass(slots=True)
class Tally:
    """What all subscribers of a phase share."""

    latencies_ns: list[int] = field(default_factory=list)
    measure_from_seq: int = 0  # events of earlier updates (warm-up) are counted but not timed


@dataclass(slots=True)
class Subscriber:
    index: int
    group: int | None  # None: sees every thing
    tally: Tally
    extensions: str  # Sec-WebSocket-Extensions of the handshake response ("" when none was negotiated)
    raw: RawWebSocket | None = None  # exactly one of raw and ws
    ws: ClientConnection | None = None
    frames: int = 0
    seen: set[int] = field(default_factory=set)  # sequence numbers received
    last_revision: dict[str, int] = field(default_factory=dict)
    revision_gaps: int = 0
    unexpected: int = 0  # frames that are not events of our writes (errors, foreign topics, binary)
    closed_code: int | None = None

    def account(self, message: str | bytes, text: bool, received_ns: int) -> None:
        """One received message: the raw client calls it from ``data_received``, so it must stay cheap."""
        if not text:
            self.unexpected += 1
            return
        try:
            frame = orjson.loads(message)
            value = frame["value"]
            seq = value["s"]
            sent_ns = value["t"]
            topic: str = frame["topic"]
            revision = frame["revision"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.unexpected += 1
            return
        self.frames += 1
        self.seen.add(seq)
        tally = self.tally
        if seq >= tally.measure_from_seq:
            tally.latencies_ns.append(received_ns - sent_ns)
        last = self.last_revision.get(topic)
        if last is not None and revision != last + 1:
            self.revision_gaps += 1
        self.last_revision[topic] = revision


@dataclass(slots=True)
class Update:
    seq: int
    thing: int
    status: int = 0
    http_ms: float = 0.0


@dataclass(slots=True)
class PhaseResult:
    name: str
    subscribers: int
    duration_s: float
    updates_sent: int = 0
    updates_failed: int = 0
    expected_frames: int = 0
    received_frames: int = 0
    missing: int = 0
    revision_gaps: int = 0
    unexpected: int = 0
    closed: int = 0
    frames_per_s: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    http_p50_ms: float = 0.0
    http_p99_ms: float = 0.0
    send_lag_max_ms: float = 0.0
    server_cpu_percent: float = 0.0
    client_cpu_percent: float = 0.0
    other_cpu_percent: float = 0.0
    connect_s: float = 0.0
    memory_mb: dict[str, float] = field(default_factory=dict)
    # the server's EventHub counters (``/health`` components.events), over the phase: None when not reported
    hub_delivered: int | None = None
    hub_dropped: int | None = None
    # Sec-WebSocket-Extensions the server answered ("" none) -> number of sessions
    extensions: dict[str, int] = field(default_factory=dict)

    @property
    def kb_per_session(self) -> float | None:
        mem = self.memory_mb
        if "before_connect" not in mem or "sessions_idle" not in mem or not self.subscribers:
            return None
        return (mem["sessions_idle"] - mem["before_connect"]) * 1024.0 / self.subscribers


def thing_id(index: int) -> str:
    return f"{NAMESPACE}:ws-{index}"


def raise_open_files(needed: int) -> None:
    """Client sockets plus the server's (the child inherits the limit when it is started afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def cpu_self_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bounded(limit: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


class PutSender:
    """The load: property PUTs over ``HTTP_CONNECTIONS`` keep-alive HTTP/1.1 connections on asyncio streams.

    Not httpx, which the setup uses: httpcore tries ``import sniffio`` on every request, a failing search of
    ``sys.path`` when sniffio is not installed (as here), and with its pool's bookkeeping that cost the client
    process several milliseconds of CPU per PUT. A request waits for a free connection (as in httpx's pool);
    its latency counts from before that wait."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.connections = connections
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.head = (
            f"HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: {AUTHORIZATION}\r\n"
            "Content-Type: application/json\r\n"
        )

    async def open(self) -> None:
        for _ in range(self.connections):
            self.free.put_nowait(await asyncio.open_connection(HOST, self.port))

    async def put(self, update: Update) -> None:
        path = f"/api/2/things/{thing_id(update.thing)}/features/{FEATURE}/properties/{PROPERTY}"
        sent = clock()
        body = orjson.dumps({"t": sent, "s": update.seq})
        reader, writer = await self.free.get()
        try:
            async with asyncio.timeout(HTTP_TIMEOUT_S):
                writer.write(
                    f"PUT {path} {self.head}Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body
                )
                update.status = await read_http_response(reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError):
            update.status = -1
            writer.close()
            try:
                reader, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                return  # one connection fewer
        finally:
            update.http_ms = (clock() - sent) / 1e6
        self.free.put_nowait((reader, writer))

    async def close(self) -> None:
        while not self.free.empty():
            _, writer = self.free.get_nowait()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


# ---------------------------------------------------------------------------------------------------------
# setup


async def seed(http: httpx.AsyncClient, things: int) -> None:
    async def create(index: int) -> None:
        body = {
            "attributes": {"group": index % GROUPS},
            "features": {FEATURE: {"properties": {PROPERTY: {"t": 0, "s": -1}}}},
        }
        r = await http.put(f"/api/2/things/{thing_id(index)}", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"PUT {thing_id(index)} -> {r.status_code} {r.text[:300]}")

    await bounded(8, [partial(create, i) for i in range(things)])


async def hub_counters(http: httpx.AsyncClient) -> tuple[int, int] | None:
    """``delivered`` and ``dropped`` of the server's event hub, from ``/health`` (None if not reported)."""
    try:
        events = (await http.get("/health")).json()["components"]["events"]
        return int(events["delivered"]), int(events["dropped"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def control_message(group: int | None) -> str:
    control = "START-SEND-EVENTS"
    if group is not None:
        control += f"?filter=eq(attributes/group,{group})&extraFields=attributes/group"
    return control


def check_ack(index: int, control: str, ack: str | bytes) -> None:
    if ack != f"{control.split('?', 1)[0]}:ACK":
        raise RuntimeError(f"subscriber {index}: expected the ACK of {control!r}, got {ack!r}")


async def open_raw_subscriber(port: int, index: int, group: int | None, tally: Tally) -> Subscriber:
    """The raw client: offers no extension (``RawWebSocket`` fails a response that selects one)."""
    async with asyncio.timeout(OPEN_TIMEOUT_S):
        raw = await RawWebSocket.connect(HOST, port, "/ws/2", [("Authorization", AUTHORIZATION)], clock=clock)
    control = control_message(group)
    raw.send_text(control)
    try:
        async with asyncio.timeout(FRAME_WAIT_S):
            payload, _ = await raw.recv()
        check_ack(index, control, payload.decode("utf-8", "replace"))
    except BaseException:
        raw.abort()
        raise
    return Subscriber(index, group, tally, raw.response_headers.get("sec-websocket-extensions", ""), raw=raw)


async def open_websockets_subscriber(
    port: int, index: int, group: int | None, tally: Tally, compression: Compression
) -> Subscriber:
    ws = await connect(
        f"ws://{HOST}:{port}/ws/2",
        additional_headers={"Authorization": AUTHORIZATION},
        compression="deflate" if compression == "deflate" else None,
        open_timeout=OPEN_TIMEOUT_S,
        max_queue=None,  # never apply back-pressure from the client side: the reader task keeps up or lags
    )
    control = control_message(group)
    await ws.send(control)
    try:
        check_ack(index, control, await asyncio.wait_for(ws.recv(), FRAME_WAIT_S))
    except BaseException:
        await ws.close()
        raise
    extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "") if ws.response else ""
    return Subscriber(index, group, tally, extensions, ws=ws)


async def receive_websockets(sub: Subscriber, ws: ClientConnection) -> None:
    """Reads until the socket closes (the ``websockets`` client: one task per subscriber)."""
    account = sub.account
    try:
        async for message in ws:
            account(message, isinstance(message, str), clock())
    except Exception:  # connection closed abnormally: counted below through close_code
        pass
    sub.closed_code = ws.close_code


def start_receiving(sub: Subscriber) -> asyncio.Future[None]:
    """Hands every further message to ``sub.account``; the future resolves when the connection is gone."""
    if sub.raw is not None:
        sub.raw.set_handler(sub.account)
        return sub.raw.closed
    assert sub.ws is not None
    return asyncio.ensure_future(receive_websockets(sub, sub.ws))


async def close_all(subs: Sequence[Subscriber], readers: Sequence[asyncio.Future[None]]) -> None:
    for sub in subs:
        if sub.raw is not None:
            sub.raw.close()
        elif sub.ws is not None:
            with contextlib.suppress(Exception):
                await sub.ws.close()
    await asyncio.wait(readers, timeout=30)
    for sub in subs:
        if sub.raw is not None:
            sub.raw.abort()  # a no-op if the server closed it
            sub.closed_code = sub.raw.close_code


# ---------------------------------------------------------------------------------------------------------
# one phase


async def run_phase(
    name: str,
    server: Server,
    args: argparse.Namespace,
    *,
    subscribers: int,
    filtered: bool,
) -> PhaseResult:
    result = PhaseResult(name, subscribers, args.duration)
    port = server.port
    auth = {"Authorization": AUTHORIZATION}
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", headers=auth, timeout=30.0, limits=limits
    ) as http:
        await seed(http, args.things)
        await asyncio.sleep(1.0)
        result.memory_mb["before_connect"] = server.rss_mb()

        started = time.perf_counter()
        tally = Tally(measure_from_seq=round(args.warmup * args.rate))
        jobs: list[Callable[[], Awaitable[Subscriber]]] = []
        for i in range(subscribers):
            group = (i % GROUPS) if filtered else None
            if args.client == "raw":
                jobs.append(partial(open_raw_subscriber, port, i, group, tally))
            else:
                jobs.append(partial(open_websockets_subscriber, port, i, group, tally, args.compression))
        subs = await bounded(CONNECT_CONCURRENCY, jobs)
        result.connect_s = time.perf_counter() - started
        for sub in subs:
            result.extensions[sub.extensions] = result.extensions.get(sub.extensions, 0) + 1
        await asyncio.sleep(2.0)  # idle: let the sessions settle before reading memory
        result.memory_mb["sessions_idle"] = server.rss_mb()
        print(
            f"[{name}] {subscribers} sessions subscribed in {result.connect_s:.1f} s; RSS "
            f"{result.memory_mb['before_connect']:.1f} -> {result.memory_mb['sessions_idle']:.1f} MiB",
            flush=True,
        )

        if args.quiet_wait > 0:
            waited = wait_for_quiet(args.quiet_wait)
            if waited is None:
                print(f"[{name}] the machine stayed busy for {args.quiet_wait:g} s: measuring anyway")
        hub_before = await hub_counters(http)
        warmup_updates = tally.measure_from_seq
        # Everything set up so far lives until the end: move it out of the collector's reach. Otherwise a full
        # collection during the load scans the 1,000 sessions' objects and stalls this loop for ~40 ms (seen
        # as client send lag and as a p99 the server did not cause).
        gc.collect()
        gc.freeze()
        readers = [start_receiving(sub) for sub in subs]

        total = warmup_updates + round(args.duration * args.rate)
        interval_ns = int(1e9 / args.rate)
        updates: list[Update] = []
        lag_max_ns = 0
        in_flight: set[asyncio.Task[None]] = set()
        sender = PutSender(port, HTTP_CONNECTIONS)
        await sender.open()

        start_ns = clock()
        cpu_srv, cpu_cli, busy, wall = 0.0, 0.0, 0.0, 0.0
        delivered_at_start = 0
        for seq in range(total):
            if seq == warmup_updates:
                cpu_srv, cpu_cli = server.cpu_seconds(), cpu_self_seconds()
                busy, wall = machine_busy_seconds(), time.perf_counter()
                delivered_at_start = sum(s.frames for s in subs)
            due = start_ns + seq * interval_ns
            now = clock()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
            else:
                lag_max_ns = max(lag_max_ns, now - due)
            update = Update(seq, seq % args.things)
            updates.append(update)
            task = asyncio.create_task(sender.put(update))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if warmup_updates >= total:
            raise SystemExit("--duration too short for --rate")
        # one more interval, so the measured window covers `duration` send slots
        await asyncio.sleep(interval_ns / 1e9)
        elapsed = time.perf_counter() - wall
        result.server_cpu_percent = 100.0 * (server.cpu_seconds() - cpu_srv) / elapsed
        result.client_cpu_percent = 100.0 * (cpu_self_seconds() - cpu_cli) / elapsed
        busy_percent = 100.0 * (machine_busy_seconds() - busy) / elapsed
        result.other_cpu_percent = max(
            0.0, busy_percent - result.server_cpu_percent - result.client_cpu_percent
        )
        delivered_in_window = sum(s.frames for s in subs) - delivered_at_start
        if in_flight:
            await asyncio.wait(in_flight, timeout=HTTP_TIMEOUT_S)
        await sender.close()

        ok = [u for u in updates if u.status == 204]
        expected_per_sub: dict[int | None, set[int]] = {}
        for sub in subs:
            if sub.group not in expected_per_sub:
                expected_per_sub[sub.group] = {
                    u.seq for u in ok if sub.group is None or u.thing % GROUPS == sub.group
                }
        expected_total = sum(len(expected_per_sub[s.group]) for s in subs)

        # drain: wait until every subscriber has every event, or the timeout
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            if all(expected_per_sub[s.group] <= s.seen for s in subs):
                break
            await asyncio.sleep(0.1)
        # what a frame in the measured window cost, before the drain wait
        result.frames_per_s = delivered_in_window / elapsed
        result.memory_mb["after_run"] = server.rss_mb()
        hub_after = await hub_counters(http)
        if hub_before is not None and hub_after is not None:
            result.hub_delivered = hub_after[0] - hub_before[0]
            result.hub_dropped = hub_after[1] - hub_before[1]
        result.memory_mb["peak"] = server.rss_mb("VmHWM")

        await close_all(subs, readers)
        gc.unfreeze()

    result.updates_sent = len(updates)
    result.updates_failed = len(updates) - len(ok)
    result.expected_frames = expected_total
    result.received_frames = sum(s.frames for s in subs)
    result.missing = sum(len(expected_per_sub[s.group] - s.seen) for s in subs)
    result.revision_gaps = sum(s.revision_gaps for s in subs)
    result.unexpected = sum(s.unexpected for s in subs)
    result.closed = sum(1 for s in subs if s.closed_code not in (None, 1000))
    lat = sorted(tally.latencies_ns)
    result.p50_ms = percentile(lat, 50) / 1e6
    result.p90_ms = percentile(lat, 90) / 1e6
    result.p99_ms = percentile(lat, 99) / 1e6
    result.max_ms = (lat[-1] / 1e6) if lat else 0.0
    http_lat = sorted(int(u.http_ms * 1e6) for u in updates if u.seq >= warmup_updates)
    result.http_p50_ms = percentile(http_lat, 50) / 1e6
    result.http_p99_ms = percentile(http_lat, 99) / 1e6
    result.send_lag_max_ms = lag_max_ns / 1e6
    return result


# ---------------------------------------------------------------------------------------------------------
# report


def report(args: argparse.Namespace, results: list[PhaseResult]) -> None:
    offer = "offers permessage-deflate" if args.compression == "deflate" else "offers no extension"
    negotiated = "; ".join(
        f"{r.name.split(':', 1)[0]}: "
        + ", ".join(f"{ext or 'none'} x{count}" for ext, count in sorted(r.extensions.items()))
        for r in results
    )
    print(
        f"\n{args.rate:g} PUT/s over {args.things} things, {args.warmup:g} s warm-up + {args.duration:g} s "
        f"measured per phase, client on the same {os.cpu_count()}-core machine\n"
        f"client {args.client} ({offer}), server {'with' if args.server_compression else 'without'} "
        f"--ws-compression; negotiated per phase: {negotiated}"
    )
    header = (
        f"{'phase':<26}{'subs':>6}{'frames/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'missing':>9}{'srv CPU%':>10}{'cli CPU%':>10}{'oth CPU%':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<26}{r.subscribers:>6}{r.frames_per_s:>10.0f}{r.p50_ms:>9.1f}{r.p90_ms:>9.1f}"
            f"{r.p99_ms:>9.1f}{r.max_ms:>9.1f}{r.missing:>9}{r.server_cpu_percent:>10.0f}"
            f"{r.client_cpu_percent:>10.0f}{r.other_cpu_percent:>10.0f}"
        )
    for r in results:
        mem = r.memory_mb
        line = (
            f"[{r.name}] updates {r.updates_sent} ({r.updates_failed} failed), HTTP p50/p99 "
            f"{r.http_p50_ms:.1f}/{r.http_p99_ms:.1f} ms, max send lag {r.send_lag_max_ms:.1f} ms; frames "
            f"{r.received_frames}/{r.expected_frames}, revision gaps {r.revision_gaps}, other frames "
            f"{r.unexpected}, abnormal closes {r.closed}, server hub delivered {r.hub_delivered} "
            f"dropped {r.hub_dropped}; RSS MiB before {mem.get('before_connect', 0):.1f}, "
            f"idle sessions {mem.get('sessions_idle', 0):.1f}, after {mem.get('after_run', 0):.1f} "
            f"(peak {mem.get('peak', 0):.1f})"
        )
        per = r.kb_per_session
        if per is not None:
            line += f", {per:.1f} KiB per idle session"
        print(line)

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    last = results[-1]
    p99_ok = all(r.p99_ms <= TARGET_P99_MS for r in results)
    drops_ok = all(r.missing == 0 for r in results)
    fps = max(r.frames_per_s for r in results)
    per = last.kb_per_session
    print(
        f"targets (reported only): p99 <= {TARGET_P99_MS:g} ms {mark(p99_ok)}; no drops at "
        f"{TARGET_FRAMES_PER_S:,.0f} frames/s {mark(drops_ok and fps >= 0.95 * TARGET_FRAMES_PER_S)} "
        f"(max {fps:,.0f} frames/s, {sum(r.missing for r in results)} missing); <= {TARGET_KB_PER_SESSION:g} kB "
        f"per idle session {mark(per is not None and per * 1.024 <= TARGET_KB_PER_SESSION)}"
    )
    for r in results:
        if r.other_cpu_percent > 15:
            print(f"WARNING: other processes used {r.other_cpu_percent:.0f}% CPU during {r.name}")
    figures = {
        "bench": "ws_events",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(args),
        "phases": [
            {**{k: getattr(r, k) for k in r.__dataclass_fields__}, "kb_per_session": r.kb_per_session}
            for r in results
        ],
    }
    print(json.dumps(figures, separators=(",", ":"), default=str))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------------------------


def start_server(args: argparse.Namespace, work: Path, name: str) -> Server:
    data_dir = work / f"data-{name}"
    data_dir.mkdir()
    port = free_port()
    server = Server(
        f"ditto-compat ({name})",
        [
            *(args.python, "-m", "ditto_compat", "serve"),
            *("--host", HOST, "--port", str(port)),
            *("--data-dir", str(data_dir), "--log-level", "warning"),
            *(("--ws-compression",) if args.server_compression else ()),
        ],
        port,
        work / f"ditto-{name}.log",
    )
    server.start()
    return server


def run_client(coro: Awaitable[T]) -> T:
    with contextlib.suppress(ImportError):
        import uvloop

        result: T = uvloop.run(coro)  # type: ignore[arg-type]
        return result
    return asyncio.run(coro)  # type: ignore[arg-type]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per phase (20)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before (2)")
    parser.add_argument("--rate", type=float, default=100.0, help="HTTP updates per second (100)")
    parser.add_argument("--things", type=int, default=100, help="things created and updated (100)")
    parser.add_argument("--subscribers", type=int, default=100, help="phase 1 subscribers, no filter (100)")
    parser.add_argument(
        "--filtered-subscribers",
        type=int,
        default=1000,
        help="phase 2 subscribers, 10%% filter (1000; 0: skip)",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "websockets"),
        default="raw",
        help="subscriber client: raw (bench/raw_ws.py, the default: a frame costs one callback) or websockets "
        "(the websockets asyncio client: a reader task per session, costs about as much CPU as the server)",
    )
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default=None,
        help="websockets client only: offer permessage-deflate as most clients do (deflate, its default) or "
        "not (none); the raw client never offers it",
    )
    parser.add_argument(
        "--server-compression",
        action="store_true",
        help="start the server with --ws-compression, so that it accepts permessage-deflate when offered",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each phase's load, wait up to this many seconds for the machine to be idle (60; 0: off)",
    )
    parser.add_argument("--phase", choices=("1", "2", "both"), default="both")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dirs and logs")
    parser.add_argument("--json-out", help="also write the figures to this file")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the server (this one)")
    args = parser.parse_args(argv)
    if args.compression is None:
        args.compression = "deflate" if args.client == "websockets" else "none"
    elif args.client == "raw" and args.compression == "deflate":
        parser.error(
            "the raw client never offers permessage-deflate: --client websockets --compression deflate"
        )
    if args.things < GROUPS or args.rate <= 0 or args.duration <= 0 or args.warmup < 0:
        parser.error(f"--things >= {GROUPS}, --rate > 0, --duration > 0, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_open_files(2 * (max(args.subscribers, args.filtered_subscribers) + 256))
    work = Path(tempfile.mkdtemp(prefix="ditto-bench-ws-"))
    phases: list[tuple[str, int, bool]] = []
    if args.phase in ("1", "both"):
        phases.append(("1: all events", args.subscribers, False))
    if args.phase in ("2", "both") and args.filtered_subscribers > 0:
        phases.append(("2: filter 10%", args.filtered_subscribers, True))
    results: list[PhaseResult] = []
    try:
        for index, (name, count, filtered) in enumerate(phases):
            server = start_server(args, work, f"phase{index + 1}")
            try:
                print(f"[{name}] server pid {server.pid} on port {server.port}", flush=True)
                coro = run_phase(name, server, args, subscribers=count, filtered=filtered)
                results.append(run_client(coro))
            except Exception:
                print(f"--- {server.name} log ---\n{server.log_tail()}", file=sys.stderr)
                raise
            finally:
                server.stop()
    finally:
        if args.keep_data:
            print(f"data and logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
