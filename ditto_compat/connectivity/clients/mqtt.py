"""MQTT 3.1.1 (``mqtt``) and MQTT 5 (``mqtt-5``) client adapter on paho-mqtt 2.x (Ditto docs
``connectivity-protocol-bindings-mqtt`` and ``connectivity-protocol-bindings-mqtt5``).

Sources: every address is a topic filter, subscribed with the source's ``qos``. Inbound headers are
``mqtt.topic``, ``mqtt.qos`` and ``mqtt.retain``; with MQTT 5 also the user properties, ``correlation-id``
(Correlation Data), ``reply-to`` (Response Topic), ``content-type`` and ``mqtt.message-expiry-interval``.

Delivery guarantee: paho runs with ``manual_ack``, so the PUBACK (QoS 1) or PUBCOMP (QoS 2) goes to the broker
only after the handler returned for the message. The session is persistent unless ``cleanSession`` is true
(MQTT 3.1.1 ``cleanSession=false``; MQTT 5 ``cleanStart=false`` with a session that never expires) under a
stable client id, so whatever was not acknowledged when the process stopped is redelivered to the next client
with that id. When the handler raises, nothing of that batch is acknowledged, later messages of the same
connection are set aside unprocessed (to keep the broker's order), and the client reconnects after
``reconnectForRedeliveryDelay`` so that the broker redelivers them. QoS 2 messages cannot be redelivered by
the broker once paho answered PUBREC, so they are kept in memory and handed over again after the reconnect.

paho's network loop runs in its own thread: arriving messages are appended to an inbox under a lock and the
asyncio loop is woken once per burst, not once per message. One task per source feeds the handler with
everything that arrived since its last call (in broker order), so bursts become batches.

Targets: ``message.address`` is the topic; the headers ``mqtt.topic``, ``mqtt.qos``, ``mqtt.retain`` (and MQTT 5
``mqtt.message-expiry-interval``) override the publish settings; with MQTT 5 the other headers become user
properties (``correlation-id``, ``reply-to`` and ``content-type`` their own properties). Publishing with QoS 1
or 2 returns once the broker acknowledged the message. ``separatePublisherClient`` and ``publisherId`` are
accepted; publishing always uses the one client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ditto_compat.connectivity.clients.base import (
    ClientStatus,
    ConnectionFailed,
    InboundHandler,
)
from ditto_compat.connectivity.clients.errors import PublishFailed
from ditto_compat.connectivity.clients.mqtt_reader import BufferedPahoClient
from ditto_compat.connectivity.clients.mqtt_settings import MqttSettings, Subscription, parse_mqtt_settings
from ditto_compat.connectivity.clients.status_tracker import StatusTracker
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Target

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 60.0
# How long close() lets a running handler call finish so that its messages can still be acknowledged.
CLOSE_DRAIN_TIMEOUT_S = 10.0
RECONNECT_MIN_DELAY_S = 1
RECONNECT_MAX_DELAY_S = 30
MAX_BATCH = 1000
# An MQTT 3.1.1 persistent session never expires; MQTT 5 says so with the maximum expiry interval.
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
OUTGOING_INFLIGHT = 1000
_TOPIC_CACHE_LIMIT = 10_000
_SPECIAL_OUT_HEADERS = frozenset({"mqtt.topic", "mqtt.qos", "mqtt.retain", "mqtt.message-expiry-interval"})


@dataclass(slots=True)
class _Delivery:
    message: ExternalMessage
    mid: int
    qos: int
    generation: int  # which broker connection delivered it: acks only make sense on that one


@dataclass(eq=False)
class _Lane:
    """The messages of one source, handed to the handler in broker order by one task."""

    index: int
    queue: deque[_Delivery] = field(default_factory=deque)
    # QoS 2 messages whose batch failed: PUBREC was sent, so the broker will not send them again.
    held: list[_Delivery] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class MqttClient:
    """One connection's MQTT client; ``connection.connection_type`` is ``mqtt`` or ``mqtt-5``."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._v5 = connection.connection_type == "mqtt-5"
        self._status = StatusTracker()
        self._settings: MqttSettings | None = None
        self._paho: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: InboundHandler | None = None
        self._closing = False
        # paho thread -> asyncio loop
        self._inbox_lock = threading.Lock()
        self._inbox: list[_Delivery] = []
        self._wakeup_pending = False
        self._lanes: dict[int, _Lane] = {}
        self._topic_sources: dict[str, int] = {}
        # source index -> its topic filters joined by ";" (ExternalMessage.metrics_address)
        self._metrics_addresses: dict[int, str] = {
            source.index: ";".join(source.addresses) for source in connection.sources
        }
        # Incremented on every accepted CONNACK (paho thread); read by the lanes.
        self._generation = 0
        self._failed_generation = -1
        self._restarting = False
        self._redelivery: asyncio.Task[None] | None = None
        self._connack: asyncio.Future[str | None] | None = None
        self._suback: asyncio.Future[str | None] | None = None
        # Reentrant: without a network thread paho may call on_publish from inside publish().
        # touched on the event loop only (publish, close, _acknowledged)
        self._puback_waiters: dict[int, asyncio.Future[str | None]] = {}
        self.dropped_count = (
            0  # QoS 0 messages set aside after a failed batch (at most once: not redelivered)
        )

    # ------------------------------------------------------------------------------------------- protocol
    def status(self) -> ClientStatus:
        return self._status.get()

    async def connect(self, handler: InboundHandler) -> None:
        settings = parse_mqtt_settings(self.connection)
        self._settings = settings
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._status.set("connecting", f"connecting to {settings.address}")
        client = self._new_paho(settings, settings.client_id, settings.clean_session)
        self._install_callbacks(client)
        self._paho = client
        try:
            await self._start_network(client, first=True)
        except ConnectionFailed as exc:
            self._paho = None
            self._status.set("failed", str(exc))
            raise
        for index in dict.fromkeys(sub.source_index for sub in settings.subscriptions):
            lane = _Lane(index)
            lane.task = asyncio.create_task(self._run_lane(lane), name=f"mqtt-source-{index}")
            self._lanes[index] = lane
        self._drain_inbox()  # messages may have arrived between SUBACK and the lanes' creation

    async def test(self) -> None:
        settings = parse_mqtt_settings(self.connection)
        # A client id of its own with a clean session: the probe must neither take over the running client's
        # connection (same id) nor leave a session behind.
        client = self._new_paho(settings, f"{settings.client_id}-test-{uuid.uuid4().hex[:8]}", True)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str | None] = loop.create_future()

        def on_connect(
            _c: paho.Client, _u: Any, _f: Any, reason_code: ReasonCode, _p: Properties | None
        ) -> None:
            refusal = f"broker refused the connection: {reason_code}" if reason_code.is_failure else None
            _call_soon(loop, _settle, answer, refusal)

        client.on_connect = on_connect
        await self._probe(client, settings, answer)

    async def publish(self, message: ExternalMessage, target: Target) -> None:
        client = self._paho
        if client is None or self._closing or self._loop is None:
            raise PublishFailed("the MQTT client is not connected")
        topic = message.header("mqtt.topic") or message.address
        qos = _publish_qos(message.header("mqtt.qos"), target.qos)
        retain = (message.header("mqtt.retain") or "").strip().lower() == "true"
        properties = self._publish_properties(message) if self._v5 else None
        payload = message.bytes_payload or b""
        # The waiter is registered right after paho accepted the message, before any await: the broker's
        # acknowledgement is handled on this loop (see _on_publish), so it can never be looked up before.
        try:
            info = client.publish(topic, payload, qos, retain, properties)
        except ValueError as exc:
            raise PublishFailed(f"cannot publish to MQTT topic {topic!r}: {exc}") from exc
        # Not connected: paho keeps QoS >= 1 messages and sends them after the reconnect.
        accepted = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            qos > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN
        )
        if not accepted:
            raise PublishFailed(f"cannot publish to MQTT topic {topic!r}: {paho.error_string(info.rc)}")
        if qos == 0:
            return
        waiter: asyncio.Future[str | None] = self._loop.create_future()
        self._puback_waiters[info.mid] = waiter
        try:
            refusal = await asyncio.wait_for(waiter, PUBLISH_TIMEOUT_S)
        except TimeoutError:
            raise PublishFailed(
                f"no acknowledgement for MQTT topic {topic!r} within {PUBLISH_TIMEOUT_S:g}s"
            ) from None
        finally:
            if self._puback_waiters.get(info.mid) is waiter:
                del self._puback_waiters[info.mid]
        if refusal is not None:
            raise PublishFailed(f"MQTT topic {topic!r}: {refusal}")

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._redelivery is not None:
            self._redelivery.cancel()
        # Lanes finish the batch in hand (and acknowledge it); what is still queued stays unacknowledged and is
        # redelivered to the next client of this session.
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for lane in self._lanes.values():
            lane.wakeup.set()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=CLOSE_DRAIN_TIMEOUT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._lanes.clear()
        client, self._paho = self._paho, None
        if client is not None:
            await asyncio.to_thread(_stop_network, client)
        waiters, self._puback_waiters = self._puback_waiters, {}
        for waiter in waiters.values():
            _settle(waiter, "the MQTT client was closed before the broker acknowledged the message")
        self._status.set("closed")

    # ------------------------------------------------------------------------------------- connecting
    def _new_paho(self, settings: MqttSettings, client_id: str, clean: bool) -> paho.Client:
        client = BufferedPahoClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if self._v5 else clean,
            protocol=MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls_context is not None:
            client.tls_set_context(settings.tls_context)
        if settings.last_will is not None:
            will = settings.last_will
            client.will_set(will.topic, will.message, will.qos, will.retain)
        client.reconnect_delay_set(RECONNECT_MIN_DELAY_S, RECONNECT_MAX_DELAY_S)
        client.max_inflight_messages_set(OUTGOING_INFLIGHT)
        client.max_queued_messages_set(0)
        return client

    def _connect_kwargs(self, settings: MqttSettings, clean: bool) -> dict[str, Any]:
        if not self._v5:
            return {}
        properties = _new_properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0 if clean else SESSION_NEVER_EXPIRES
        return {"clean_start": clean, "properties": properties}

    async def _start_network(self, client: paho.Client, *, first: bool) -> None:
        """Connect, start paho's thread and wait for CONNACK and SUBACK; raises :class:`ConnectionFailed`."""
        settings = self._require_settings()
        loop = asyncio.get_running_loop()
        self._connack = loop.create_future()
        self._suback = loop.create_future() if settings.subscriptions else None
        try:
            if first:
                kwargs = self._connect_kwargs(settings, settings.clean_session)
                await asyncio.to_thread(
                    client.connect, settings.host, settings.port, settings.keep_alive_s, **kwargs
                )
            else:
                await asyncio.to_thread(client.reconnect)
        except (OSError, ValueError) as exc:
            raise ConnectionFailed(f"cannot connect to MQTT broker {settings.address}: {exc}") from exc
        client.loop_start()
        refusal: str | None
        try:
            refusal = await asyncio.wait_for(asyncio.shield(self._connack), CONNECT_TIMEOUT_S)
            if refusal is None and self._suback is not None:
                refusal = await asyncio.wait_for(asyncio.shield(self._suback), CONNECT_TIMEOUT_S)
        except TimeoutError:
            refusal = f"MQTT broker {settings.address} did not answer within {CONNECT_TIMEOUT_S:g}s"
        if refusal is not None:
            await asyncio.to_thread(_stop_network, client)
            raise ConnectionFailed(refusal)

    async def _probe(
        self, client: paho.Client, settings: MqttSettings, answer: asyncio.Future[str | None]
    ) -> None:
        try:
            await asyncio.to_thread(
                client.connect,
                settings.host,
                settings.port,
                settings.keep_alive_s,
                **self._connect_kwargs(settings, True),
            )
        except (OSError, ValueError) as exc:
            raise ConnectionFailed(f"cannot connect to MQTT broker {settings.address}: {exc}") from exc
        client.loop_start()
        try:
            refusal = await asyncio.wait_for(answer, CONNECT_TIMEOUT_S)
        except TimeoutError:
            refusal = f"MQTT broker {settings.address} did not answer within {CONNECT_TIMEOUT_S:g}s"
        finally:
            await asyncio.to_thread(_stop_network, client)
        if refusal is not None:
            raise ConnectionFailed(refusal)

    def _require_settings(self) -> MqttSettings:
        if self._settings is None:
            raise ConnectionFailed("the MQTT client was not connected")
        return self._settings

    def _subscriptions(self) -> list[tuple[str, Any]]:
        settings = self._require_settings()
        if self._v5:
            # Retained messages only for a new subscription: a resubscription after a reconnect must not
            # deliver the retained messages once more.
            return [
                (
                    sub.topic_filter,
                    SubscribeOptions(qos=sub.qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB),
                )
                for sub in settings.subscriptions
            ]
        return [(sub.topic_filter, sub.qos) for sub in settings.subscriptions]

    # ----------------------------------------------------------------------- paho callbacks (its thread)
    def _install_callbacks(self, client: paho.Client) -> None:
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason_code: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            refusal = f"MQTT broker refused the connection: {reason_code}"
            self._status.set("failed", refusal)
            self._settle_threadsafe(self._connack, refusal)
            return
        self._generation += 1
        settings = self._require_settings()
        if settings.subscriptions:
            client.subscribe(self._subscriptions())
        else:
            self._status.set("open")
        self._settle_threadsafe(self._connack, None)

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: Any,
        _mid: int,
        codes: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        settings = self._require_settings()
        refused = [
            f"{sub.topic_filter!r}: {code}"
            for sub, code in zip(settings.subscriptions, codes, strict=False)
            if code.is_failure
        ]
        refusal = f"MQTT broker refused the subscription of {', '.join(refused)}" if refused else None
        if refusal is None:
            self._status.set("open")
        else:
            self._status.set("failed", refusal)
        self._settle_threadsafe(self._suback, refusal)

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason_code: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if self._closing:
            return
        connack = self._connack
        if connack is not None and not connack.done():
            # closed before CONNACK, e.g. a TLS broker that wants a client certificate: say so now rather than
            # after the CONNACK timeout
            refusal = f"the MQTT broker closed the connection before accepting it ({reason_code})"
            self._status.set("failed", refusal)
            self._settle_threadsafe(connack, refusal)
            return
        if self._restarting:
            self._status.set(
                "connecting", "reconnecting so that the broker redelivers unacknowledged messages"
            )
        else:
            self._status.set("connecting", f"connection lost ({reason_code}); reconnecting")

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        if not self._closing:
            address = self._settings.address if self._settings else "?"
            self._status.set("failed", f"MQTT broker {address} unreachable; retrying with backoff")

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = bytes(msg._topic).decode("utf-8", errors="replace")
        headers: dict[str, str] = {}
        if self._v5 and msg.properties is not None:
            _add_v5_headers(headers, msg.properties)
        headers["mqtt.topic"] = topic
        headers["mqtt.qos"] = str(msg.qos)
        headers["mqtt.retain"] = "true" if msg.retain else "false"
        text, payload = _split_payload(bytes(msg.payload), headers.get("content-type"))
        source_index = self._source_index(topic)
        message = ExternalMessage(
            headers=headers,
            text=text,
            payload=payload,
            address=topic,
            source_index=source_index,
            metrics_address=self._metrics_addresses.get(source_index),
        )
        delivery = _Delivery(message, msg.mid, msg.qos, self._generation)
        with self._inbox_lock:
            self._inbox.append(delivery)
            if self._wakeup_pending:
                return
            self._wakeup_pending = True
        if self._loop is not None:
            _call_soon(self._loop, self._drain_inbox)

    def _on_publish(
        self,
        _client: paho.Client,
        _userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        _props: Properties | None,
    ) -> None:
        # paho's network thread, holding paho's outgoing-message lock: take no lock of ours here (publish()
        # holds the loop thread while paho takes that same lock), just hand the acknowledgement to the loop.
        if self._loop is None:
            return
        refusal = f"broker refused the message: {reason_code}" if reason_code.is_failure else None
        _call_soon(self._loop, self._acknowledged, mid, refusal)

    def _acknowledged(self, mid: int, refusal: str | None) -> None:
        """On the loop: the broker acknowledged (or refused) the message ``mid``."""
        waiter = self._puback_waiters.pop(mid, None)
        if waiter is not None:
            _settle(waiter, refusal)

    def _settle_threadsafe(self, future: asyncio.Future[str | None] | None, value: str | None) -> None:
        if future is not None and self._loop is not None:
            _call_soon(self._loop, _settle, future, value)

    def _source_index(self, topic: str) -> int:
        index = self._topic_sources.get(topic)
        if index is not None:
            return index
        subscriptions = self._require_settings().subscriptions
        index = next(
            (sub.source_index for sub in subscriptions if _matches(sub, topic)),
            subscriptions[0].source_index if subscriptions else 0,
        )
        if len(self._topic_sources) >= _TOPIC_CACHE_LIMIT:
            self._topic_sources.clear()
        self._topic_sources[topic] = index
        return index

    # ------------------------------------------------------------------------ asyncio side: consuming
    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            arrived, self._inbox = self._inbox, []
            self._wakeup_pending = False
        for delivery in arrived:
            lane = self._lanes.get(delivery.message.source_index)
            if lane is None:  # the lanes start right after the first SUBACK; keep it for them
                with self._inbox_lock:
                    self._inbox.append(delivery)
                continue
            lane.queue.append(delivery)
            lane.wakeup.set()

    async def _run_lane(self, lane: _Lane) -> None:
        handler = self._handler
        assert handler is not None
        while not self._closing:
            batch = self._next_batch(lane)
            if not batch:
                lane.wakeup.clear()
                await lane.wakeup.wait()
                continue
            try:
                await handler([delivery.message for delivery in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._batch_failed(lane, batch, exc)
                continue
            self._acknowledge(batch)

    def _next_batch(self, lane: _Lane) -> list[_Delivery]:
        batch: list[_Delivery] = []
        if lane.held and self._generation > self._failed_generation:
            batch.extend(lane.held)
            lane.held.clear()
        while lane.queue and len(batch) < MAX_BATCH:
            delivery = lane.queue.popleft()
            if delivery.generation <= self._failed_generation:
                # Came after a failed message on a connection that is being replaced: processing it now would
                # overtake the failed one. The broker redelivers QoS 1; QoS 2 is kept; QoS 0 is gone.
                if delivery.qos == 2:
                    lane.held.append(delivery)
                elif delivery.qos == 0:
                    self.dropped_count += 1
                continue
            batch.append(delivery)
        return batch

    def _batch_failed(self, lane: _Lane, batch: list[_Delivery], exc: Exception) -> None:
        settings = self._require_settings()
        log.warning(
            "connection %s: handling %d MQTT message(s) failed, reconnecting in %gs for redelivery: %s",
            self.connection.id,
            len(batch),
            settings.redelivery_delay_s,
            exc,
        )
        self._failed_generation = max(self._failed_generation, max(d.generation for d in batch))
        lane.held[:0] = [delivery for delivery in batch if delivery.qos == 2]
        self.dropped_count += sum(1 for delivery in batch if delivery.qos == 0)
        if self._redelivery is None or self._redelivery.done():
            self._redelivery = asyncio.create_task(self._reconnect_for_redelivery(), name="mqtt-redelivery")

    def _acknowledge(self, batch: list[_Delivery]) -> None:
        client = self._paho
        if client is None:
            return
        generation = self._generation
        for delivery in batch:
            if delivery.qos == 0:
                continue
            # A QoS 1 message of an earlier connection is redelivered on the current one and acknowledged then.
            # QoS 2: the broker resends PUBREL after a reconnect and waits for this PUBCOMP.
            if delivery.qos == 1 and delivery.generation != generation:
                continue
            client.ack(delivery.mid, delivery.qos)

    async def _reconnect_for_redelivery(self) -> None:
        settings = self._require_settings()
        await asyncio.sleep(settings.redelivery_delay_s)  # Ditto's reconnectForRedeliveryDelay
        client = self._paho
        if client is None or self._closing:
            return
        self._restarting = True
        try:
            await asyncio.to_thread(_stop_network, client)
            delay = float(RECONNECT_MIN_DELAY_S)
            while not self._closing:
                try:
                    await self._start_network(client, first=False)
                    return
                except ConnectionFailed as exc:
                    self._status.set("failed", f"{exc}; retrying in {delay:g}s")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_DELAY_S)
        finally:
            self._restarting = False
            for lane in self._lanes.values():
                lane.wakeup.set()  # held QoS 2 messages may go now

    # ------------------------------------------------------------------------------------- publishing
    def _publish_properties(self, message: ExternalMessage) -> Properties | None:
        properties = _new_properties(PacketTypes.PUBLISH)
        user: list[tuple[str, str]] = []
        any_set = False
        for name, value in message.headers.items():
            lowered = name.lower()
            if lowered == "mqtt.message-expiry-interval":
                with contextlib.suppress(ValueError):
                    properties.MessageExpiryInterval = int(value)
                    any_set = True
            elif lowered in _SPECIAL_OUT_HEADERS:
                continue
            elif lowered == "correlation-id":
                properties.CorrelationData = value.encode("utf-8")
                any_set = True
            elif lowered == "reply-to":
                properties.ResponseTopic = value
                any_set = True
            elif lowered == "content-type":
                properties.ContentType = value
                any_set = True
            else:
                user.append((name, value))
        if user:
            properties.UserProperty = user
            any_set = True
        return properties if any_set else None


# ---------------------------------------------------------------------------------------------- helpers
def _stop_network(client: paho.Client) -> None:
    """Blocking: send DISCONNECT (a clean one keeps the session and suppresses the last will) and stop paho's
    thread."""
    client.disconnect()
    client.loop_stop()


def _new_properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(callback, *args)


def _settle(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)


def _matches(subscription: Subscription, topic: str) -> bool:
    topic_filter = subscription.topic_filter
    if topic_filter.startswith("$share/"):
        # A shared subscription ``$share/<group>/<filter>`` delivers topics matching ``<filter>``.
        topic_filter = topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else topic_filter
    return paho.topic_matches_sub(topic_filter, topic)


def _add_v5_headers(headers: dict[str, str], properties: Properties) -> None:
    for name, value in getattr(properties, "UserProperty", None) or ():
        headers[str(name)] = str(value)
    correlation = getattr(properties, "CorrelationData", None)
    if correlation is not None:
        headers["correlation-id"] = bytes(correlation).decode("utf-8", errors="replace")
    response_topic = getattr(properties, "ResponseTopic", None)
    if response_topic is not None:
        headers["reply-to"] = str(response_topic)
    content_type = getattr(properties, "ContentType", None)
    if content_type is not None:
        headers["content-type"] = str(content_type)
    expiry = getattr(properties, "MessageExpiryInterval", None)
    if expiry is not None:
        headers["mqtt.message-expiry-interval"] = str(expiry)


def _split_payload(raw: bytes, content_type: str | None) -> tuple[str | None, bytes | None]:
    if (
        content_type is not None
        and content_type.split(";", 1)[0].strip().lower() == "application/octet-stream"
    ):
        return None, bytes(raw)
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, bytes(raw)


def _publish_qos(header: str | None, target_qos: int | None) -> int:
    if header is not None and header.strip():
        try:
            qos = int(header.strip())
        except ValueError:
            raise PublishFailed(f"header mqtt.qos must be 0, 1 or 2: {header!r}") from None
    else:
        qos = target_qos or 0
    if qos not in (0, 1, 2):
        raise PublishFailed(f"MQTT qos must be 0, 1 or 2: {qos}")
    return qos
