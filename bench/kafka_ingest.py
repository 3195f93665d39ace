"""Kafka ingestion end to end: N modify commands over M things, from a Kafka topic through a connection into
the twins (issue targets: >= 10,000 messages/s sustained, 1,000-message batches applied in < 100 ms, SQLite).

1. Starts a Tansu broker (memory storage) and ``ditto-compat serve`` on a fresh SQLite data directory, both on
   free loopback ports, both stopped by PID at the end.
2. Creates M things (``bench:thing-<i>`` with feature ``f``) over HTTP.
3. Produces N Ditto Protocol ``modify`` commands to ``features/f/properties/p``, keyed by thing so each thing's
   messages keep their order (bench/kafka_produce.py), before the connection exists: ingestion then runs as
   fast as the server can take it.
4. Creates a ``kafka`` connection (``qos: 1``: offsets are committed only once a batch is durable,
   ``consumerOffsetReset: earliest``) and times it until every message is applied: the connection's metrics
   count N applied messages, then one search checks that all M things are at their final revision (1 + N/M)
   and each thing's last value is the one produced last.
5. Prints messages/s (from the first applied batch to the last), the per-batch figures the connection keeps
   (``inboundBatches`` in its metrics: p50/p99/max and largest batch), the server's RSS and its CPU time.

Usage::

    .venv/bin/python bench/kafka_ingest.py                       # 1,000,000 messages over 10,000 things
    .venv/bin/python bench/kafka_ingest.py --messages 200000 --things 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.http_put import Server, free_port  # noqa: E402
from bench.kafka_produce import create_topic, produce_modify_messages  # noqa: E402

DITTO = ("ditto", "ditto")
DEVOPS = ("devops", "foobar")
POLL_S = 0.2  # how often the connection's count of applied messages is read


async def create_things(base_url: str, things: int) -> None:
    async with httpx.AsyncClient(base_url=base_url, auth=DITTO, timeout=30) as http:
        semaphore = asyncio.Semaphore(32)

        async def put(i: int) -> None:
            async with semaphore:
                body = {"features": {"f": {"properties": {"p": -1}}}}
                r = await http.put(f"/api/2/things/bench:thing-{i}", json=body)
                r.raise_for_status()

        await asyncio.gather(*(put(i) for i in range(things)))


async def group_commit(base_url: str) -> dict[str, int]:
    """The SQLite store's group-commit counters from /health (transactions, commits, largest round)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        health = (await http.get("/health")).json()
    stats: dict[str, int] = health.get("components", {}).get("storage", {}).get("groupCommit", {})
    return stats


def connection(bootstrap: str, topic: str, partitions: int) -> dict[str, Any]:
    return {
        "name": "kafka ingestion benchmark",
        "connectionType": "kafka",
        "connectionStatus": "open",
        "uri": f"tcp://{bootstrap}",
        "specificConfig": {
            "bootstrapServers": bootstrap,
            "groupId": f"bench-{uuid.uuid4().hex[:6]}",
            "consumerOffsetReset": "earliest",
        },
        "sources": [
            {
                "addresses": [topic],
                "authorizationContext": ["nginx:ditto"],
                "qos": 1,
                "consumerCount": 1,
            }
        ],
    }


def ingestion_server(prefix: str) -> tuple[Server, Path]:
    """``ditto-compat serve`` on a fresh SQLite data directory and a free port (not started yet)."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    server = Server(
        "ditto-compat",
        [
            *(sys.executable, "-m", "ditto_compat", "serve", "--host", "127.0.0.1", "--port", str(port)),
            *("--data-dir", str(data_dir), "--log-level", "warning"),
        ],
        port,
        data_dir / "server.log",
    )
    return server, data_dir


@dataclass
class Ingestion:
    """When the connection was first seen applying a batch, when every thing reached its final revision (None
    when the timeout came first), and the highest server RSS seen meanwhile."""

    first_applied_at: float | None
    done_at: float | None
    peak_rss_mib: float


async def until_ingested(
    http: httpx.AsyncClient,
    server: Server,
    connection_id: str,
    *,
    messages: int,
    things: int,
    final_revision: int,
    since: float,
    timeout_s: float,
    poll_s: float = POLL_S,
    check: Callable[[], None] | None = None,
) -> Ingestion:
    """Poll the connection's count of applied messages (its metrics, held in memory) until it is ``messages``,
    then check once that every thing is at ``final_revision`` (``check`` runs each round and may raise, e.g.
    when a publisher failed). A search per poll would measure the benchmark's own load: counting 10,000 things
    five times a second took a twelfth of the server's CPU."""
    first_applied_at: float | None = None
    peak_rss = server.rss_mb()
    while time.perf_counter() - since < timeout_s:
        if check is not None:
            check()
        metrics = (await http.get(f"/api/2/connections/{connection_id}/metrics", auth=DEVOPS)).json()
        if first_applied_at is None and metrics.get("inboundBatches"):
            first_applied_at = time.perf_counter()
        peak_rss = max(peak_rss, server.rss_mb())
        if applied(metrics) >= messages:
            done_at = time.perf_counter()
            r = await http.get(
                "/api/2/search/things/count", params={"filter": f"eq(_revision,{final_revision})"}, auth=DITTO
            )
            return Ingestion(first_applied_at, done_at if int(r.text) == things else None, peak_rss)
        await asyncio.sleep(poll_s)
    return Ingestion(first_applied_at, None, peak_rss)


def applied(metrics: dict[str, Any]) -> int:
    """Messages the connection applied (acknowledged successfully), from its metrics."""
    acknowledged: int = metrics["connectionMetrics"]["inbound"]["acknowledged"]["success"]["PT1H"]
    return acknowledged


async def wrong_last_values(http: httpx.AsyncClient, messages: int, things: int) -> int:
    """Sampled things (every hundredth) whose value is not the last one produced for them."""
    wrong = 0
    for i in range(0, things, max(1, things // 100)):
        value = (await http.get(f"/api/2/things/bench:thing-{i}/features/f/properties/p", auth=DITTO)).json()
        wrong += value != messages - things + i
    return wrong


def messages_per_second(messages: int, ingestion: Ingestion) -> int | None:
    if ingestion.done_at is None or ingestion.first_applied_at is None:
        return None
    return round(messages / (ingestion.done_at - ingestion.first_applied_at))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.brokers.kafka import start_tansu

    per_thing, remainder = divmod(args.messages, args.things)
    assert remainder == 0, "--messages must be a multiple of --things"
    broker = start_tansu()
    bootstrap = f"127.0.0.1:{broker.port}"
    server, _data_dir = ingestion_server("kafka-ingest-")
    try:
        server.start()
        base_url = f"http://127.0.0.1:{server.port}"
        started = time.perf_counter()
        await create_things(base_url, args.things)
        print(f"created {args.things} things in {time.perf_counter() - started:.1f} s", flush=True)
        topic = f"ingest-{uuid.uuid4().hex[:6]}"
        await create_topic(bootstrap, topic, args.partitions)
        produced_s = await produce_modify_messages(bootstrap, topic, args.messages, args.things)
        print(f"produced {args.messages} messages in {produced_s:.1f} s", flush=True)
        rss_before = server.rss_mb()
        cpu_before = server.cpu_seconds()
        rounds_before = await group_commit(base_url)

        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            r = await http.post("/api/2/connections", json=connection(bootstrap, topic, 1), auth=DEVOPS)
            r.raise_for_status()
            connection_id = r.json()["id"]
            created_at = time.perf_counter()
            ingestion = await until_ingested(
                http,
                server,
                connection_id,
                messages=args.messages,
                things=args.things,
                final_revision=1 + per_thing,
                since=created_at,
                timeout_s=args.timeout,
            )
            metrics = (await http.get(f"/api/2/connections/{connection_id}/metrics", auth=DEVOPS)).json()
            # the last value of each thing is the last message produced for it
            wrong = await wrong_last_values(http, args.messages, args.things)
        rounds = await group_commit(base_url)
        batches = metrics.get("inboundBatches", {})
        acknowledged = applied(metrics)
        result: dict[str, Any] = {
            "messages": args.messages,
            "things": args.things,
            "partitions": args.partitions,
            "complete": ingestion.done_at is not None,
            "acknowledged": acknowledged,
            "seconds_from_connection": round((ingestion.done_at or time.perf_counter()) - created_at, 2),
            "messages_per_second": messages_per_second(args.messages, ingestion),
            "batch": batches,
            # SQLite transactions that applied the ingestion: fewer than batches means one per batch or better
            "store_transactions": rounds.get("rounds", 0) - rounds_before.get("rounds", 0),
            # WAL checkpoints run off the writer, and the WAL's size in pages at the last one (bounded)
            "wal_checkpoints": rounds.get("checkpoints", 0) - rounds_before.get("checkpoints", 0),
            "wal_pages": rounds.get("wal_frames", 0),
            "last_value_wrong_of_sampled": wrong,
            "rss_mib_before": round(rss_before, 1),
            "rss_mib_peak": round(ingestion.peak_rss_mib, 1),
            "server_cpu_seconds": round(server.cpu_seconds() - cpu_before, 1),
        }
        return result
    finally:
        server.stop()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--things", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for ingestion")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
