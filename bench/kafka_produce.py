"""Kafka ingestion load: a fast producer of N Ditto Protocol ``modify`` commands spread over M things.

Each record is a Ditto Protocol message (``content-type: application/vnd.eclipse.ditto+json``) that sets
``features/f/properties/p`` of ``<namespace>:thing-<i>`` to a number unique to the message, keyed by the thing
id so that every thing's messages stay in order on one partition (Ditto's ``connectivity-protocol-bindings-kafka2``
source, ``protocol-specification-things-modify``). Thing ``i`` gets messages ``i, i+M, i+2M, ...``: the last
value of each thing is known, which lets an ingestion benchmark check what landed.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python bench/kafka_produce.py --bootstrap 127.0.0.1:9092 --topic ingest --messages 200000
    .venv/bin/python bench/kafka_produce.py --messages 200000 --consume-with-adapter

Without ``--bootstrap`` it starts its own Tansu broker (memory storage, free loopback port; stopped by PID at
the end). ``--consume-with-adapter`` then reads the topic back through
:class:`ditto_compat.connectivity.clients.kafka.KafkaClient` with a no-op handler and prints the adapter's raw
consumption rate (what the adapter costs before any mapping or persistence).

Importable: :func:`produce_modify_messages` for a benchmark that drives ingestion end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parent.parent
DITTO_JSON = b"application/vnd.eclipse.ditto+json"
# Futures awaited per round: enough in flight to fill batches, few enough to bound memory.
IN_FLIGHT = 20_000


def modify_message(namespace: str, thing: int, value: int) -> tuple[bytes, bytes]:
    """(key, value) of one modify command for ``<namespace>:thing-<thing>``."""
    thing_id = f"{namespace}:thing-{thing}"
    body = {
        "topic": f"{namespace}/thing-{thing}/things/twin/commands/modify",
        "headers": {"content-type": "application/json", "correlation-id": f"bench-{value}"},
        "path": "/features/f/properties/p",
        "value": value,
    }
    return thing_id.encode(), orjson.dumps(body)


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce_modify_messages(
    bootstrap: str, topic: str, messages: int, things: int, *, namespace: str = "bench", acks: Any = 1
) -> float:
    """Send ``messages`` modify commands round-robin over ``things``; returns the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=acks,
        enable_idempotence=False,  # fails against Tansu (SERVICES.md)
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=8 << 20,
    )
    await producer.start()
    headers = [("content-type", DITTO_JSON)]
    started = time.perf_counter()
    try:
        pending: list[asyncio.Future[Any]] = []
        for value in range(messages):
            key, body = modify_message(namespace, value % things, value)
            pending.append(await producer.send(topic, body, key=key, headers=headers))
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def consume_with_adapter(bootstrap: str, topic: str, expected: int, timeout_s: float) -> dict[str, Any]:
    """Read ``expected`` records through the adapter (qos 1, commit after each batch) with a no-op handler."""
    from ditto_compat.connectivity.clients.kafka import KafkaClient
    from ditto_compat.connectivity.external import ExternalMessage
    from ditto_compat.connectivity.model import Connection, Source

    connection = Connection(
        id=f"bench-{uuid.uuid4().hex[:8]}",
        connection_type="kafka",
        connection_status="open",
        uri=f"tcp://{bootstrap}",
        sources=(Source(addresses=(topic,), authorization_context=("bench:kafka",), qos=1),),
        specific_config={"bootstrapServers": bootstrap, "consumerOffsetReset": "earliest"},
    )
    received = 0
    batches = 0
    first_at: float | None = None
    done = asyncio.Event()

    async def handler(batch: Sequence[ExternalMessage]) -> None:
        nonlocal received, batches, first_at
        if first_at is None:
            first_at = time.perf_counter()
        received += len(batch)
        batches += 1
        if received >= expected:
            done.set()

    client = KafkaClient(connection)
    connected_at = time.perf_counter()
    await client.connect(handler)
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
        finished_at = time.perf_counter()
    finally:
        await client.close()
    assert first_at is not None
    seconds = finished_at - first_at
    return {
        "records": received,
        "batches": batches,
        "join_seconds": round(first_at - connected_at, 2),
        "seconds": round(seconds, 3),
        "records_per_second": round(received / seconds) if seconds > 0 else None,
    }


async def main(args: argparse.Namespace) -> None:
    service = None
    bootstrap: str = args.bootstrap
    if not bootstrap:
        sys.path.insert(0, str(REPO_ROOT))
        from tests.brokers.kafka import start_tansu

        service = start_tansu()
        bootstrap = f"127.0.0.1:{service.port}"
        print(f"started Tansu (pid {service.pid}) on {bootstrap}")
    topic = args.topic or f"ingest-{uuid.uuid4().hex[:8]}"
    try:
        if not args.no_create_topic:
            await create_topic(bootstrap, topic, args.partitions)
        seconds = await produce_modify_messages(
            bootstrap, topic, args.messages, args.things, namespace=args.namespace
        )
        print(
            f"produced {args.messages} modify messages over {args.things} things to '{topic}' "
            f"in {seconds:.2f} s ({args.messages / seconds:,.0f} msg/s)"
        )
        if args.consume_with_adapter:
            figures = await consume_with_adapter(bootstrap, topic, args.messages, args.timeout)
            print(f"adapter consumption (no-op handler, qos 1): {figures}")
    finally:
        if service is not None:
            service.stop()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="", help="host:port of the broker (default: start a Tansu)")
    parser.add_argument("--topic", default="", help="topic (default: a fresh ingest-<random>)")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--things", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--namespace", default="bench")
    parser.add_argument("--no-create-topic", action="store_true", help="the topic exists already")
    parser.add_argument(
        "--consume-with-adapter", action="store_true", help="read it back through KafkaClient"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="limit for --consume-with-adapter (s)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
