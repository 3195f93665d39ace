"""MQTT QoS 1 ingestion end to end: N Ditto Protocol modify commands over M things, from MQTT publishers through
an ``mqtt`` connection into the twins (Ditto doc ``connectivity-protocol-bindings-mqtt``; the Kafka counterpart
is bench/kafka_ingest.py).

1. Starts a Mosquitto (tests/brokers/mqtt.py: ``max_inflight_messages 1000``, ``max_queued_messages 1000000``,
   no persistence) and ``ditto-compat serve`` on a fresh SQLite data directory, both on free loopback ports,
   both stopped by PID at the end.
2. Creates M things (``bench:thing-<i>`` with feature ``f``) over HTTP.
3. Creates an ``mqtt`` connection with one source ``bench/+/telemetry``, ``qos: 1`` (the PUBACK goes to the
   broker only once the change is durable; persistent session) and waits until it is open.
4. Starts P publisher processes (paho-mqtt, QoS 1, up to ``--window`` unacknowledged messages each). Message k
   (0 <= k < N) sets ``features/f/properties/p`` of thing ``k % M`` to k, on topic ``bench/thing-<i>/telemetry``;
   a thing's messages all come from one publisher, in order, so each thing's last value is known.
   ``--mode live`` (default) publishes while the connection consumes: the sustained rate with the publishers on
   the same machine. ``--mode backlog`` closes the connection first, lets the broker queue everything in its
   persistent session, then opens it: the server's ingestion rate without publishers competing for the CPU.
5. Times ingestion until the count of things at their final revision (1 + N/M) is M, checked by a search, and
   samples each thing's last value.
6. Prints a JSON result: messages/s applied (from the first applied batch to the last), the publishers' own rate
   (so that a publisher bottleneck shows), the connection's ``inboundBatches`` (p50/p99/max ms and the largest
   batch), the SQLite transactions that applied them, server RSS (before and peak) and CPU seconds, and the CPU
   seconds of the publishers, the broker and everything else on the machine.

Usage::

    .venv/bin/python bench/mqtt_ingest.py                       # 200,000 messages over 1,000 things, live
    .venv/bin/python bench/mqtt_ingest.py --messages 50000 --publishers 2
    .venv/bin/python bench/mqtt_ingest.py --mode backlog
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.kafka_ingest import (  # noqa: E402
    DEVOPS,
    POLL_S,
    applied,
    create_things,
    group_commit,
    ingestion_server,
    messages_per_second,
    until_ingested,
    wrong_last_values,
)

TOPIC_FILTER = "bench/+/telemetry"
OPEN_TIMEOUT_S = 60.0


# ---------------------------------------------------------------------------------------------------- publisher


def modify_payload(thing: int, value: int) -> bytes:
    return orjson.dumps(
        {
            "topic": f"bench/thing-{thing}/things/twin/commands/modify",
            "headers": {"correlation-id": f"bench-{value}"},
            "path": "/features/f/properties/p",
            "value": value,
        }
    )


def publish_share(port: int, index: int, publishers: int, messages: int, things: int, window: int) -> None:
    """One publisher process: every message k whose thing (k % things) belongs to this publisher, at QoS 1, at
    most ``window`` unacknowledged; prints a JSON line with its count, seconds and CPU seconds."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    mine = [k for k in range(messages) if (k % things) % publishers == index]
    payloads = [(f"bench/thing-{k % things}/telemetry", modify_payload(k % things, k)) for k in mine]
    acked = 0
    room = threading.Condition()

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        with room:
            acked += 1
            room.notify()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-publisher-{index}-{os.getpid()}")
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port, keepalive=120)
    client.loop_start()
    cpu_before = time.process_time()
    started = time.perf_counter()
    try:
        for sent, (topic, payload) in enumerate(payloads):
            with room:
                while sent - acked >= window:
                    room.wait(timeout=30)
            client.publish(topic, payload, qos=1)
        with room:
            deadline = time.monotonic() + 600
            while acked < len(payloads) and time.monotonic() < deadline:
                room.wait(timeout=1)
        elapsed = time.perf_counter() - started
    finally:
        client.loop_stop()
        client.disconnect()
    result = {
        "published": len(payloads),
        "acknowledged": acked,
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(time.process_time() - cpu_before, 2),
    }
    print(json.dumps(result), flush=True)


async def run_publishers(args: argparse.Namespace, port: int) -> dict[str, Any]:
    """Starts the publisher processes together and waits for all of them; their aggregate rate."""
    started = time.perf_counter()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--publisher-index",
            str(i),
            "--broker-port",
            str(port),
            "--publishers",
            str(args.publishers),
            "--messages",
            str(args.messages),
            "--things",
            str(args.things),
            "--window",
            str(args.window),
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(args.publishers)
    ]
    results = []
    for process in processes:
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a publisher exited with {process.returncode}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    elapsed = time.perf_counter() - started
    published = sum(r["published"] for r in results)
    slowest = max(r["seconds"] for r in results)
    return {
        "processes": args.publishers,
        "published": published,
        "acknowledged_by_broker": sum(r["acknowledged"] for r in results),
        # from the first publish to the last PUBACK of the slowest publisher (start-up excluded)
        "seconds": round(slowest, 2),
        "messages_per_second": round(published / slowest) if slowest else None,
        "seconds_with_startup": round(elapsed, 2),
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 1),
    }


# ---------------------------------------------------------------------------------------------------- ingestion


def connection(broker_uri: str) -> dict[str, Any]:
    return {
        "name": "mqtt ingestion benchmark",
        "connectionType": "mqtt",
        "connectionStatus": "open",
        "uri": broker_uri,
        "sources": [{"addresses": [TOPIC_FILTER], "authorizationContext": ["nginx:ditto"], "qos": 1}],
    }


async def wait_for_status(http: httpx.AsyncClient, connection_id: str, wanted: str) -> None:
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    while True:
        r = await http.get(f"/api/2/connections/{connection_id}/status", auth=DEVOPS)
        if r.json().get("liveStatus") == wanted:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"connection not {wanted} after {OPEN_TIMEOUT_S:g} s: {r.text}")
        await asyncio.sleep(POLL_S)


async def command(http: httpx.AsyncClient, connection_id: str, name: str) -> None:
    r = await http.post(
        f"/api/2/connections/{connection_id}/command",
        content=f"connectivity.commands:{name}",
        headers={"content-type": "text/plain"},
        auth=DEVOPS,
    )
    r.raise_for_status()


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from the first line of ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.brokers.mqtt import start_mosquitto

    per_thing, remainder = divmod(args.messages, args.things)
    assert remainder == 0, "--messages must be a multiple of --things"
    broker = start_mosquitto()
    assert broker.service is not None
    broker_pid = broker.service.process.pid
    server, data_dir = ingestion_server("mqtt-ingest-")
    try:
        server.start()
        base_url = f"http://127.0.0.1:{server.port}"
        started = time.perf_counter()
        await create_things(base_url, args.things)
        print(f"created {args.things} things in {time.perf_counter() - started:.1f} s", flush=True)

        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            r = await http.post("/api/2/connections", json=connection(broker.uri), auth=DEVOPS)
            r.raise_for_status()
            connection_id = r.json()["id"]
            await wait_for_status(http, connection_id, "open")
            publishing: asyncio.Task[dict[str, Any]] | None = None
            if args.mode == "backlog":
                # the persistent session keeps the subscription: the broker queues what arrives meanwhile
                await command(http, connection_id, "closeConnection")
                await wait_for_status(http, connection_id, "closed")
                publisher = await run_publishers(args, broker.port)
                print(f"published {publisher['published']} messages in {publisher['seconds']} s", flush=True)
            rss_before = server.rss_mb()
            cpu_before = server.cpu_seconds()
            broker_cpu_before = process_cpu_seconds(broker_pid)
            machine_before = machine_busy_seconds()
            rounds_before = await group_commit(base_url)
            measured_from = time.perf_counter()
            if args.mode == "backlog":
                await command(http, connection_id, "openConnection")
            else:
                publishing = asyncio.create_task(run_publishers(args, broker.port))

            def publishers_alive() -> None:
                if publishing is not None and publishing.done():
                    publishing.result()  # a failed publisher ends the run here

            ingestion = await until_ingested(
                http,
                server,
                connection_id,
                messages=args.messages,
                things=args.things,
                final_revision=1 + per_thing,
                since=measured_from,
                timeout_s=args.timeout,
                check=publishers_alive,
            )
            server_cpu = server.cpu_seconds() - cpu_before
            rounds = await group_commit(base_url)
            broker_cpu = process_cpu_seconds(broker_pid) - broker_cpu_before
            if publishing is not None:
                publisher = await publishing
            machine_cpu = machine_busy_seconds() - machine_before
            # in backlog mode the publishers ran before the measurement
            ours = server_cpu + broker_cpu + (publisher["cpu_seconds"] if args.mode == "live" else 0.0)
            metrics = (await http.get(f"/api/2/connections/{connection_id}/metrics", auth=DEVOPS)).json()
            wrong = await wrong_last_values(http, args.messages, args.things)
        acknowledged = applied(metrics)
        return {
            "mode": args.mode,
            "messages": args.messages,
            "things": args.things,
            "complete": ingestion.done_at is not None,
            "acknowledged": acknowledged,
            "seconds_from_start": round((ingestion.done_at or time.perf_counter()) - measured_from, 2),
            "messages_per_second": messages_per_second(args.messages, ingestion),
            "publisher": publisher,
            "batch": metrics.get("inboundBatches", {}),
            # SQLite transactions that applied the ingestion (as in kafka_ingest.py)
            "store_transactions": rounds.get("rounds", 0) - rounds_before.get("rounds", 0),
            # WAL checkpoints run off the writer, and the WAL's size in pages at the last one (bounded)
            "wal_checkpoints": rounds.get("checkpoints", 0) - rounds_before.get("checkpoints", 0),
            "wal_pages": rounds.get("wal_frames", 0),
            "last_value_wrong_of_sampled": wrong,
            "rss_mib_before": round(rss_before, 1),
            "rss_mib_peak": round(ingestion.peak_rss_mib, 1),
            "server_cpu_seconds": round(server_cpu, 1),
            "broker_cpu_seconds": round(broker_cpu, 1),
            # everything else the 2 cores ran meanwhile (other processes; this script's own polling)
            "other_cpu_seconds": round(max(0.0, machine_cpu - ours), 1),
        }
    finally:
        server.stop()
        broker.stop()
        shutil.rmtree(broker.config_path.parent, ignore_errors=True)
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--things", type=int, default=1_000)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--window", type=int, default=1000, help="unacknowledged messages per publisher")
    parser.add_argument("--mode", choices=("live", "backlog"), default="live")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for ingestion")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's data dir and log")
    parser.add_argument("--json-out", type=Path)
    # internal: run as one publisher process
    parser.add_argument("--publisher-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--broker-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher_index is not None:
        publish_share(
            args.broker_port, args.publisher_index, args.publishers, args.messages, args.things, args.window
        )
        return
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
