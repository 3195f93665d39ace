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

Each PUT's value is ``{"t": <perf_counter_ns when sent>, "s": <sequence number>}``, so a subscriber measures the
end-to-end latency (HTTP request sent -> event frame received) from the frame alone, and counts by sequence
number which events it did not get. It also checks that the revisions it sees per thing increase without gaps.
Prints p50/p99, delivered frames/s, missing events, CPU and RSS figures against the targets (reported, not
enforced): p99 <= 50 ms, no drops at 10,000 delivered frames/s, <= 100 kB per idle session.

    .venv/bin/python bench/ws_events.py                    # 20 s per phase
    .venv/bin/python bench/ws_events.py --duration 10 --compression none

Client and server share the machine (2 cores). Every process is stopped by its PID; all traffic goes to
127.0.0.1. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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

NAMESPACE = "bench"
FEATURE, PROPERTY = "f", "p"
GROUPS = 10  # thing i has attributes/group = i % GROUPS; a filtered subscriber matches one group
CONNECT_CONCURRENCY = 50
FRAME_WAIT_S = 10.0
DRAIN_TIMEOUT_S = 15.0
HTTP_CONNECTIONS = 16

TARGET_P99_MS = 50.0
TARGET_FRAMES_PER_S = 10_000.0
TARGET_KB_PER_SESSION = 100.0

Compression = Literal["deflate", "none"]
T = TypeVar("T")


@dataclass(slots=True)
class Subscriber:
    index: int
    ws: ClientConnection
    group: int | None  # None: sees every thing
    frames: int = 0
    seen: set[int] = field(default_factory=set)  # sequence numbers received
    last_revision: dict[str, int] = field(default_factory=dict)
    revision_gaps: int = 0
    unexpected: int = 0  # frames that are not events of our writes (errors, foreign topics)
    closed_code: int | None = None


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


async def open_subscriber(port: int, index: int, group: int | None, compression: Compression) -> Subscriber:
    url = f"ws://{HOST}:{port}/ws/2"
    ws = await connect(
        url,
        additional_headers={"Authorization": AUTHORIZATION},
        compression="deflate" if compression == "deflate" else None,
        open_timeout=30,
        max_queue=None,  # never apply back-pressure from the client side: the reader task keeps up or lags
    )
    control = "START-SEND-EVENTS"
    if group is not None:
        control += f"?filter=eq(attributes/group,{group})&extraFields=attributes/group"
    await ws.send(control)
    ack = await asyncio.wait_for(ws.recv(), FRAME_WAIT_S)
    if ack != f"{control.split('?', 1)[0]}:ACK":
        await ws.close()
        raise RuntimeError(f"subscriber {index}: expected the ACK of {control!r}, got {ack!r}")
    return Subscriber(index, ws, group)


async def receive(sub: Subscriber, latencies_ns: list[int], measure_from_seq: list[int]) -> None:
    """Reads until the socket closes; records latency of every event of a measured update."""
    loads = orjson.loads
    clock = time.perf_counter_ns
    try:
        async for text in sub.ws:
            now = clock()
            try:
                frame = loads(text)
                value = frame["value"]
                seq = value["s"]
                sent_ns = value["t"]
                topic: str = frame["topic"]
                revision = frame["revision"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                sub.unexpected += 1
                continue
            sub.frames += 1
            sub.seen.add(seq)
            if seq >= measure_from_seq[0]:
                latencies_ns.append(now - sent_ns)
            last = sub.last_revision.get(topic)
            if last is not None and revision != last + 1:
                sub.revision_gaps += 1
            sub.last_revision[topic] = revision
    except Exception:  # connection closed abnormally: counted below through close_code
        pass
    sub.closed_code = sub.ws.close_code


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
    limits = httpx.Limits(max_connections=HTTP_CONNECTIONS, max_keepalive_connections=HTTP_CONNECTIONS)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", headers=auth, timeout=30.0, limits=limits
    ) as http:
        await seed(http, args.things)
        await asyncio.sleep(1.0)
        result.memory_mb["before_connect"] = server.rss_mb()

        started = time.perf_counter()
        jobs = [
            partial(open_subscriber, port, i, (i % GROUPS) if filtered else None, args.compression)
            for i in range(subscribers)
        ]
        subs = await bounded(CONNECT_CONCURRENCY, jobs)
        result.connect_s = time.perf_counter() - started
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
        latencies_ns: list[int] = []
        warmup_updates = round(args.warmup * args.rate)
        measure_from_seq = [warmup_updates]
        readers = [asyncio.create_task(receive(sub, latencies_ns, measure_from_seq)) for sub in subs]

        total = warmup_updates + round(args.duration * args.rate)
        interval_ns = int(1e9 / args.rate)
        updates: list[Update] = []
        lag_max_ns = 0
        in_flight: set[asyncio.Task[None]] = set()

        async def send(update: Update) -> None:
            path = f"/api/2/things/{thing_id(update.thing)}/features/{FEATURE}/properties/{PROPERTY}"
            sent = time.perf_counter_ns()
            body = orjson.dumps({"t": sent, "s": update.seq})
            try:
                r = await http.put(path, content=body, headers={"Content-Type": "application/json"})
                update.status = r.status_code
            except httpx.HTTPError:
                update.status = -1
            update.http_ms = (time.perf_counter_ns() - sent) / 1e6

        start_ns = time.perf_counter_ns()
        cpu_srv, cpu_cli, busy, wall = 0.0, 0.0, 0.0, 0.0
        delivered_at_start = 0
        for seq in range(total):
            if seq == warmup_updates:
                cpu_srv, cpu_cli = server.cpu_seconds(), cpu_self_seconds()
                busy, wall = machine_busy_seconds(), time.perf_counter()
                delivered_at_start = sum(s.frames for s in subs)
            due = start_ns + seq * interval_ns
            now = time.perf_counter_ns()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
            else:
                lag_max_ns = max(lag_max_ns, now - due)
            update = Update(seq, seq % args.things)
            updates.append(update)
            task = asyncio.create_task(send(update))
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
            await asyncio.wait(in_flight, timeout=30)

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

        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.ws.close()
        await asyncio.wait(readers, timeout=30)

    result.updates_sent = len(updates)
    result.updates_failed = len(updates) - len(ok)
    result.expected_frames = expected_total
    result.received_frames = sum(s.frames for s in subs)
    result.missing = sum(len(expected_per_sub[s.group] - s.seen) for s in subs)
    result.revision_gaps = sum(s.revision_gaps for s in subs)
    result.unexpected = sum(s.unexpected for s in subs)
    result.closed = sum(1 for s in subs if s.closed_code not in (None, 1000))
    lat = sorted(latencies_ns)
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
    print(
        f"\n{args.rate:g} PUT/s over {args.things} things, {args.warmup:g} s warm-up + {args.duration:g} s "
        f"measured per phase, compression {args.compression}, client on the same {2}-core machine"
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
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="offer permessage-deflate as most clients do (deflate, the default) or not (none)",
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
