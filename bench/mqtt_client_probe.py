"""How fast the MQTT client adapter alone can consume: QoS 1 messages through ``MqttClient`` into a handler that
does nothing, acknowledged after the handler as in production. Not a test; it tells the end-to-end ingestion
benchmark the adapter's ceiling.

A private Mosquitto is started on a free port (tests/brokers/mqtt.py). The adapter's persistent session is
created first, then ``mosquitto_pub`` (C, so the publisher is not the bottleneck) queues the messages for it,
then the adapter connects and the time until the handler saw them all is measured.

    .venv/bin/python -m bench.mqtt_client_probe [--messages 50000] [--size 200]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence

from ditto_compat.connectivity.clients.mqtt import MqttClient
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Source
from tests.brokers.mqtt import Mosquitto, start_mosquitto


async def probe(broker: Mosquitto, connection_type: str, messages: int, size: int) -> float:
    topic = f"probe/{uuid.uuid4().hex[:6]}"
    connection = Connection(
        id=f"probe-{uuid.uuid4().hex[:8]}",
        connection_type=connection_type,
        connection_status="open",
        uri=broker.uri,
        sources=(Source(addresses=(f"{topic}/#",), authorization_context=("ditto:probe",), qos=1),),
    )
    seen = 0
    done = asyncio.Event()

    async def no_op(batch: Sequence[ExternalMessage]) -> None:
        nonlocal seen
        seen += len(batch)
        if seen >= messages:
            done.set()

    first = MqttClient(connection)
    await first.connect(no_op)  # creates the persistent session and its subscription
    await first.close()

    line = ("x" * size + "\n").encode()
    version = "mqttv5" if connection_type == "mqtt-5" else "mqttv311"
    publisher = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", version,
        "-q", "1", "-t", f"{topic}/data", "-l",
        stdin=subprocess.PIPE,
    )  # fmt: skip
    await publisher.communicate(line * messages)

    client = MqttClient(connection)
    started = time.perf_counter()
    await client.connect(no_op)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await client.close()
    return messages / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=200, help="payload bytes")
    args = parser.parse_args()
    broker = start_mosquitto()
    try:
        for connection_type in ("mqtt", "mqtt-5"):
            rate = await probe(broker, connection_type, args.messages, args.size)
            print(f"{connection_type:7} QoS 1, {args.messages} x {args.size} B: {rate:,.0f} msgs/s consumed")
    finally:
        broker.stop()
        shutil.rmtree(broker.config_path.parent, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
