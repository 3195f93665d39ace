"""How the simulator delivers a twin's update: an HTTP merge patch, or a Ditto Protocol ``merge`` command
published to MQTT or Kafka (where the server's connection picks it up). ``send`` never waits for the answer
of the message it sends (so a rate can be held); ``close`` waits for every message in flight."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx

from ditto_compat.seeding.connections import KAFKA_TOPIC, mqtt_topic
from ditto_compat.seeding.telemetry.signals import Update

MERGE_PATCH = "application/merge-patch+json"
# Messages in flight before send() waits: enough to hide the latency, few enough to notice a slow server.
MAX_IN_FLIGHT = 64
CLOSE_TIMEOUT_S = 30.0


@dataclass
class Stats:
    """Counters shared by the transport and the progress display (broker callbacks run on other threads)."""

    sent: int = 0
    delivered: int = 0
    errors: int = 0
    last_error: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def count_sent(self) -> None:
        with self._lock:
            self.sent += 1

    def count_delivered(self) -> None:
        with self._lock:
            self.delivered += 1

    def count_error(self, reason: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = reason


def features_patch(update: Update) -> dict[str, Any]:
    """``{featureId: {"properties": {...}}}``: a merge into the thing's ``features``."""
    return {feature: {"properties": props} for feature, props in update.items()}


def merge_command(thing_id: str, update: Update) -> bytes:
    """The Ditto Protocol ``merge`` of the features; no response wanted (nobody would read it)."""
    namespace, _, name = thing_id.partition(":")
    envelope = {
        "topic": f"{namespace}/{name}/things/twin/commands/merge",
        "headers": {
            "content-type": MERGE_PATCH,
            "correlation-id": uuid.uuid4().hex,
            "response-required": False,
        },
        "path": "/features",
        "value": features_patch(update),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


class Transport(Protocol):
    stats: Stats

    async def start(self) -> None: ...

    async def send(self, thing_id: str, update: Update) -> None: ...

    async def close(self) -> None: ...


class HttpTransport:
    """``PATCH /api/2/things/{id}/features`` with a merge patch, up to ``MAX_IN_FLIGHT`` at a time."""

    def __init__(self, client: httpx.AsyncClient, stats: Stats) -> None:
        self.client = client
        self.stats = stats
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    async def send(self, thing_id: str, update: Update) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._patch(thing_id, update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _patch(self, thing_id: str, update: Update) -> None:
        try:
            self.stats.count_sent()
            r = await self.client.patch(
                f"/api/2/things/{quote(thing_id, safe=':')}/features",
                content=json.dumps(features_patch(update)),
                headers={"Content-Type": MERGE_PATCH},
            )
            if r.is_success:
                self.stats.count_delivered()
            else:
                self.stats.count_error(f"{thing_id}: {r.status_code} {r.text[:200]}")
        except httpx.HTTPError as exc:
            self.stats.count_error(f"{thing_id}: {type(exc).__name__}: {exc}")
        finally:
            self._slots.release()

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_TIMEOUT_S)


class MqttTransport:
    """Publishes with QoS 1 through paho-mqtt's network thread; delivered = acknowledged by the broker."""

    def __init__(self, broker_uri: str, stats: Stats, *, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        parts = urlsplit(broker_uri if "://" in broker_uri else f"tcp://{broker_uri}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.stats = stats
        self._mqtt = mqtt
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"ditto-compat-simulator-{uuid.uuid4().hex[:8]}",
        )
        if parts.username:
            self._client.username_pw_set(parts.username, parts.password)
        self._client.max_inflight_messages_set(MAX_IN_FLIGHT)
        self._client.on_publish = self._on_publish
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def _on_publish(self, _client: Any, _userdata: Any, _mid: int, reason: Any, _props: Any) -> None:
        failed = getattr(reason, "is_failure", False)
        if failed:
            self.stats.count_error(f"publish refused: {reason}")
        else:
            self.stats.count_delivered()
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def start(self) -> None:
        connected = threading.Event()
        outcome: list[Any] = []

        def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
            outcome.append(reason)
            connected.set()

        self._client.on_connect = on_connect
        try:
            await asyncio.to_thread(self._client.connect, self.host, self.port)
        except OSError as exc:
            raise ConnectionError(f"cannot reach the MQTT broker {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        if not await asyncio.to_thread(connected.wait, 10.0) or getattr(outcome[0], "is_failure", False):
            self._client.loop_stop()
            raise ConnectionError(
                f"the MQTT broker {self.host}:{self.port} refused us: {outcome or 'no answer'}"
            )

    async def send(self, thing_id: str, update: Update) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        info = self._client.publish(mqtt_topic(thing_id), merge_command(thing_id, update), qos=1)
        self.stats.count_sent()
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS and info.rc != self._mqtt.MQTT_ERR_NO_CONN:
            self.stats.count_error(f"publish failed: {self._mqtt.error_string(info.rc)}")
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    async def close(self) -> None:
        await asyncio.to_thread(self._idle.wait, CLOSE_TIMEOUT_S)
        self._client.disconnect()
        self._client.loop_stop()


class KafkaTransport:
    """aiokafka producer on the simulator topic, keyed by thing id (one partition keeps a thing's order)."""

    def __init__(self, bootstrap_servers: str, stats: Stats) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.stats = stats
        self._producer: Any = None
        self._futures: set[asyncio.Future[Any]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT * 4)

    async def ensure_topic(self) -> None:
        """Creates the topic before the connection subscribes to it (auto-creation is not everywhere)."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            await admin.start()
            topics = await admin.list_topics()
            if KAFKA_TOPIC not in topics:
                await admin.create_topics([NewTopic(KAFKA_TOPIC, num_partitions=1, replication_factor=1)])
        except Exception as exc:  # the producer's first send may still create it: report, do not fail
            self.stats.last_error = f"could not create topic {KAFKA_TOPIC}: {exc}"
        finally:
            await admin.close()

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        # Idempotence needs InitProducerId, which not every Kafka-compatible broker offers.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers, enable_idempotence=False, linger_ms=5
        )
        try:
            await self._producer.start()
        except Exception as exc:
            await self._producer.stop()
            raise ConnectionError(f"cannot reach Kafka at {self.bootstrap_servers}: {exc}") from exc

    async def send(self, thing_id: str, update: Update) -> None:
        await self._slots.acquire()
        try:
            future = await self._producer.send(
                KAFKA_TOPIC, merge_command(thing_id, update), key=thing_id.encode()
            )
        except Exception as exc:
            self._slots.release()
            self.stats.count_error(f"send failed: {exc}")
            return
        self.stats.count_sent()
        self._futures.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._futures.discard(future)
        self._slots.release()
        if future.cancelled():
            self.stats.count_error("send cancelled")
        elif future.exception() is not None:
            self.stats.count_error(f"send failed: {future.exception()}")
        else:
            self.stats.count_delivered()

    async def close(self) -> None:
        if self._producer is None:
            return
        if self._futures:
            await asyncio.wait(list(self._futures), timeout=CLOSE_TIMEOUT_S)
        await self._producer.stop()
