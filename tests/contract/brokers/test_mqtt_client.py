"""The MQTT 3.1.1 and MQTT 5 client adapter against a real Mosquitto (Ditto docs
``connectivity-protocol-bindings-mqtt``, ``-mqtt5``): inbound headers, order, acknowledgement only after the
handler returned (redelivery after a failure and after a crash), publishing with QoS and header overrides,
reconnecting after a broker restart, and ``test()`` failures."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ditto_compat.connectivity.clients.base import ConnectionFailed
from ditto_compat.connectivity.clients.mqtt import MqttClient
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Source, Target
from tests.brokers.mqtt import PASSWORD, USERNAME, Mosquitto
from tests.contract.brokers.recording import DEADLINE_S, RecordingHandler, eventually

VERSIONS = ["mqtt", "mqtt-5"]
PROJECT_ROOT = str(Path(__file__).resolve().parents[3])


def _protocol(connection_type: str) -> MQTTProtocolVersion:
    return MQTTProtocolVersion.MQTTv5 if connection_type == "mqtt-5" else MQTTProtocolVersion.MQTTv311


def make_connection(
    connection_type: str,
    uri: str,
    sources: Mapping[str, int] | None = None,
    specific: Mapping[str, str] | None = None,
    connection_id: str | None = None,
) -> Connection:
    return Connection(
        id=connection_id or f"mqtt-test-{uuid.uuid4().hex[:10]}",
        connection_type=connection_type,
        connection_status="open",
        uri=uri,
        sources=tuple(
            Source(addresses=(address,), authorization_context=("ditto:inbound",), qos=qos, index=index)
            for index, (address, qos) in enumerate((sources or {}).items())
        ),
        specific_config=dict(specific or {}),
    )


def target(qos: int | None) -> Target:
    return Target(address="unused", topics=(), authorization_context=("ditto:outbound",), qos=qos)


@dataclass
class Device:
    """A plain paho client on the broker's other side: publishes as a device would and records what it gets."""

    client: paho.Client
    received: list[paho.MQTTMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, **kwargs: Any) -> None:
        info = self.client.publish(topic, payload, qos, **kwargs)
        if qos:
            info.wait_for_publish(DEADLINE_S)
            assert info.is_published()

    def messages(self) -> list[paho.MQTTMessage]:
        with self.lock:
            return list(self.received)


def open_device(broker: Mosquitto, connection_type: str, subscribe: str | None = None) -> Device:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"device-{uuid.uuid4().hex[:8]}",
        protocol=_protocol(connection_type),
    )
    device = Device(client)
    subscribed = threading.Event()

    def on_message(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        with device.lock:
            device.received.append(message)

    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    if subscribe is not None:
        client.subscribe(subscribe, 2)
        assert subscribed.wait(DEADLINE_S)
    return device


@pytest.fixture
def devices() -> Iterator[list[Device]]:
    opened: list[Device] = []
    yield opened
    for device in opened:
        device.client.disconnect()
        device.client.loop_stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[MqttClient]]:
    opened: list[MqttClient] = []
    yield opened
    for client in opened:
        await client.close()


async def consuming(
    connection_type: str,
    mosquitto: Mosquitto,
    sources: Mapping[str, int],
    clients: list[MqttClient],
    devices: list[Device],
) -> tuple[MqttClient, RecordingHandler, Device]:
    """A client connected to ``sources`` (closed by the ``clients`` fixture), what it handed over, and a device
    publishing to the same broker (closed by the ``devices`` fixture)."""
    handler = RecordingHandler()
    client = MqttClient(make_connection(connection_type, mosquitto.uri, sources))
    clients.append(client)
    await client.connect(handler)
    device = open_device(mosquitto, connection_type)
    devices.append(device)
    return client, handler, device


# ------------------------------------------------------------------------------------------------ inbound
@pytest.mark.parametrize("connection_type", VERSIONS)
async def test_consumes_with_mqtt_headers(
    connection_type: str, mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    client, handler, device = await consuming(
        connection_type, mosquitto, {"sensors/+/telemetry": 1}, clients, devices
    )
    assert client.status().state == "open"

    device.publish("sensors/s1/telemetry", '{"t": 21.5}', qos=1)
    device.publish("sensors/s1/other", "not subscribed", qos=1)
    device.publish("sensors/s2/telemetry", b"\xff\xfe binary", qos=0)
    await handler.wait_for_count(2)

    first, second = handler.handled[:2]
    assert first.headers["mqtt.topic"] == "sensors/s1/telemetry"
    assert first.headers["mqtt.qos"] == "1"
    assert first.headers["mqtt.retain"] == "false"
    assert first.text == '{"t": 21.5}' and first.payload is None
    assert first.address == "sensors/s1/telemetry" and first.source_index == 0
    # Granted QoS is the minimum of the published and the subscribed one.
    assert second.headers["mqtt.qos"] == "0"
    assert second.text is None and second.payload == b"\xff\xfe binary"
    assert all(m.headers["mqtt.topic"] != "sensors/s1/other" for m in handler.handled)


async def test_mqtt5_properties_become_headers(
    mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    _client, handler, device = await consuming("mqtt-5", mosquitto, {"v5/in": 1}, clients, devices)

    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.UserProperty = [("device-id", "dev-7"), ("x-trace", "abc")]
    properties.CorrelationData = b"corr-42"
    properties.ResponseTopic = "v5/replies/dev-7"
    properties.ContentType = "application/vnd.eclipse.ditto+json"
    properties.MessageExpiryInterval = 120
    device.publish("v5/in", "{}", qos=1, properties=properties)
    await handler.wait_for_count(1)

    headers = handler.handled[0].headers
    assert headers["device-id"] == "dev-7"
    assert headers["x-trace"] == "abc"
    assert headers["correlation-id"] == "corr-42"
    assert headers["reply-to"] == "v5/replies/dev-7"
    assert headers["content-type"] == "application/vnd.eclipse.ditto+json"
    assert headers["mqtt.message-expiry-interval"] in ("120", "119")
    assert headers["mqtt.topic"] == "v5/in"


@pytest.mark.parametrize("connection_type", VERSIONS)
async def test_keeps_broker_order_per_source(
    connection_type: str, mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    _client, handler, device = await consuming(connection_type, mosquitto, {"order/#": 1}, clients, devices)

    count = 2000
    await asyncio.to_thread(lambda: [device.publish(f"order/{i % 7}", str(i), qos=1) for i in range(count)])
    await handler.wait_for_count(count)

    assert handler.texts == [str(i) for i in range(count)]
    # Messages that arrived together were handed over together.
    assert len(handler.batch_sizes) < count


@pytest.mark.parametrize("connection_type", VERSIONS)
async def test_packets_larger_than_a_read_and_bursts_of_small_ones_arrive_whole(
    connection_type: str, mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    """The client reads the socket in 64 KiB chunks (clients/mqtt_reader.py): packets that straddle a chunk, span
    several, or come hundreds to a chunk arrive whole and in order."""
    _client, handler, device = await consuming(connection_type, mosquitto, {"chunks/#": 1}, clients, devices)

    payloads = [f"{i}:" + "x" * (i * 37 % 300) for i in range(1500)]
    payloads[700] = "big:" + "y" * 200_000  # three chunks and then some
    payloads[701] = "big:" + "z" * 65_536
    await asyncio.to_thread(lambda: [device.publish("chunks/a", p, qos=1) for p in payloads])
    await handler.wait_for_count(len(payloads))

    assert handler.texts == payloads


@pytest.mark.parametrize("connection_type", VERSIONS)
@pytest.mark.parametrize("qos", [1, 2])
async def test_failed_handler_gets_the_message_again_after_reconnect(
    connection_type: str, qos: int, mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    attempts: dict[str, int] = {}

    def fail_first_time(message: ExternalMessage) -> bool:
        text = message.text_payload or ""
        attempts[text] = attempts.get(text, 0) + 1
        return text == "m2" and attempts[text] == 1

    handler = RecordingHandler(fail_first_time)
    client = MqttClient(
        make_connection(
            connection_type, mosquitto.uri, {"redeliver/+": qos}, {"reconnectForRedeliveryDelay": "1s"}
        )
    )
    clients.append(client)
    await client.connect(handler)
    device = open_device(mosquitto, connection_type)
    devices.append(device)

    for text in ("m1", "m2", "m3", "m4"):
        device.publish("redeliver/a", text, qos=qos)
    await handler.wait_until(lambda: "m4" in handler.texts)

    assert [m.text_payload for m in handler.failed if m.text_payload == "m2"]
    # Nothing lost, nothing overtaken: what came after the failed message waited for its redelivery.
    assert handler.texts == ["m1", "m2", "m3", "m4"]
    await eventually(lambda: client.status().state == "open", "client open again")


@pytest.mark.parametrize("connection_type", VERSIONS)
async def test_unacknowledged_messages_survive_a_killed_process(
    connection_type: str, mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    connection = make_connection(connection_type, mosquitto.uri, {"crash/+": 1})
    # A process that consumes with a handler that never returns, then is killed with SIGKILL.
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from ditto_compat.connectivity.clients.mqtt import MqttClient
        from ditto_compat.connectivity.model import Connection, Source

        async def main() -> None:
            connection = Connection(
                id={connection.id!r}, connection_type={connection_type!r}, connection_status="open",
                uri={mosquitto.uri!r},
                sources=(Source(addresses=("crash/+",), authorization_context=("ditto:inbound",), qos=1),),
            )
            async def stuck(batch):
                print("got", len(batch), flush=True)
                await asyncio.Event().wait()
            await MqttClient(connection).connect(stuck)
            print("connected", flush=True)
            await asyncio.Event().wait()

        asyncio.run(main())
        """
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=PROJECT_ROOT,
    )
    try:
        assert process.stdout is not None
        first_line = await asyncio.wait_for(process.stdout.readline(), DEADLINE_S)
        assert first_line.strip() == b"connected", first_line
        device = open_device(mosquitto, connection_type)
        devices.append(device)
        for i in range(5):
            device.publish("crash/a", f"c{i}", qos=1)
        got = await asyncio.wait_for(process.stdout.readline(), DEADLINE_S)
        assert got.startswith(b"got"), got
    finally:
        process.send_signal(signal.SIGKILL)  # our child, by its PID
        await asyncio.wait_for(process.wait(), DEADLINE_S)

    handler = RecordingHandler()
    client = MqttClient(connection)  # the same client id: the broker resumes the session
    clients.append(client)
    await client.connect(handler)
    await handler.wait_until(lambda: {f"c{i}" for i in range(5)} <= set(handler.texts))
    assert sorted(set(handler.texts)) == [f"c{i}" for i in range(5)]


async def test_handled_messages_are_not_redelivered_to_the_next_client(
    mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    connection = make_connection("mqtt", mosquitto.uri, {"acked/+": 1})
    handler = RecordingHandler()
    client = MqttClient(connection)
    await client.connect(handler)
    device = open_device(mosquitto, "mqtt")
    devices.append(device)
    for i in range(3):
        device.publish("acked/a", f"a{i}", qos=1)
    await handler.wait_for_count(3)
    await client.close()
    device.publish("acked/a", "while-away", qos=1)

    again = RecordingHandler()
    client = MqttClient(connection)
    clients.append(client)
    await client.connect(again)
    await again.wait_for_count(1)
    device.publish("acked/a", "marker", qos=1)
    await again.wait_until(lambda: "marker" in again.texts)
    assert again.texts == ["while-away", "marker"]


# ----------------------------------------------------------------------------------------------- outbound
@pytest.mark.parametrize("connection_type", VERSIONS)
async def test_publishes_with_target_qos_and_header_overrides(
    connection_type: str, mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    prefix = f"out-{uuid.uuid4().hex[:6]}"
    device = open_device(mosquitto, connection_type, subscribe=f"{prefix}/#")
    devices.append(device)
    client = MqttClient(make_connection(connection_type, mosquitto.uri))
    clients.append(client)
    await client.connect(RecordingHandler())

    await client.publish(ExternalMessage(text='{"a":1}', address=f"{prefix}/plain"), target(1))
    overridden = ExternalMessage(
        headers={"mqtt.topic": f"{prefix}/override", "mqtt.qos": "2", "mqtt.retain": "true"},
        payload=b"\x00\x01",
        address=f"{prefix}/ignored",
    )
    await client.publish(overridden, target(0))
    await eventually(lambda: len(device.messages()) >= 2, "device received both")

    plain, override = device.messages()[:2]
    assert (plain.topic, plain.payload, plain.qos) == (f"{prefix}/plain", b'{"a":1}', 1)
    assert (override.topic, override.payload, override.qos) == (f"{prefix}/override", b"\x00\x01", 2)
    assert all(m.topic != f"{prefix}/ignored" for m in device.messages())

    # The retain flag: a subscriber arriving later gets the message as a retained one.
    late = open_device(mosquitto, connection_type, subscribe=f"{prefix}/override")
    devices.append(late)
    await eventually(lambda: len(late.messages()) == 1, "retained message delivered")
    assert late.messages()[0].retain and late.messages()[0].payload == b"\x00\x01"


async def test_mqtt5_headers_become_properties(
    mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    prefix = f"out5-{uuid.uuid4().hex[:6]}"
    device = open_device(mosquitto, "mqtt-5", subscribe=f"{prefix}/#")
    devices.append(device)
    client = MqttClient(make_connection("mqtt-5", mosquitto.uri))
    clients.append(client)
    await client.connect(RecordingHandler())

    message = ExternalMessage(
        headers={
            "correlation-id": "c-1",
            "reply-to": f"{prefix}/replies",
            "content-type": "application/json",
            "device-id": "d-1",
            "mqtt.message-expiry-interval": "300",
        },
        text="{}",
        address=f"{prefix}/props",
    )
    await client.publish(message, target(1))
    await eventually(lambda: len(device.messages()) == 1, "device received the message")

    properties = device.messages()[0].properties
    assert properties is not None
    assert properties.CorrelationData == b"c-1"
    assert properties.ResponseTopic == f"{prefix}/replies"
    assert properties.ContentType == "application/json"
    assert ("device-id", "d-1") in properties.UserProperty
    assert all(name != "mqtt.message-expiry-interval" for name, _ in properties.UserProperty)
    assert 0 < properties.MessageExpiryInterval <= 300


async def test_publish_rejects_an_invalid_topic_and_qos(
    mosquitto: Mosquitto, clients: list[MqttClient]
) -> None:
    from ditto_compat.connectivity.clients.errors import PublishFailed

    client = MqttClient(make_connection("mqtt", mosquitto.uri))
    clients.append(client)
    await client.connect(RecordingHandler())
    with pytest.raises(PublishFailed, match="topic"):
        await client.publish(ExternalMessage(text="x", address="bad/#/topic"), target(1))
    with pytest.raises(PublishFailed, match="qos"):
        await client.publish(ExternalMessage(headers={"mqtt.qos": "3"}, text="x", address="ok"), target(1))


# ------------------------------------------------------------------------------------ reconnect and test()
@pytest.mark.parametrize("connection_type", VERSIONS)
async def test_reconnects_after_the_broker_restarts(
    connection_type: str, own_mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    handler = RecordingHandler()
    client = MqttClient(make_connection(connection_type, own_mosquitto.uri, {"restart/+": 1}))
    clients.append(client)
    await client.connect(handler)
    states: list[str] = []

    own_mosquitto.stop()
    await eventually(lambda: client.status().state != "open", "client notices the outage")
    states.append(client.status().state)
    await asyncio.to_thread(own_mosquitto.start)
    await eventually(lambda: client.status().state == "open", "client open again", within_s=40)

    # The broker kept no session (persistence false): receiving again proves the client resubscribed.
    device = open_device(own_mosquitto, connection_type)
    devices.append(device)
    device.publish("restart/a", "after-restart", qos=1)
    await handler.wait_until(lambda: "after-restart" in handler.texts)
    await client.publish(ExternalMessage(text="out", address="restart/out"), target(1))
    assert states[0] in ("connecting", "failed")


@pytest.mark.parametrize("connection_type", VERSIONS)
async def test_test_fails_for_an_unreachable_port(connection_type: str) -> None:
    from tests.services import free_port

    client = MqttClient(make_connection(connection_type, f"tcp://127.0.0.1:{free_port()}", {"x": 1}))
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        await client.test()
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        await client.connect(RecordingHandler())
    assert client.status().state == "failed"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("connection_type", VERSIONS)
async def test_test_reports_bad_credentials(connection_type: str, mosquitto_with_password: Mosquitto) -> None:
    good = MqttClient(make_connection(connection_type, mosquitto_with_password.uri_with(USERNAME, PASSWORD)))
    await good.test()

    for uri in (mosquitto_with_password.uri_with(USERNAME, "wrong"), mosquitto_with_password.uri):
        bad = MqttClient(make_connection(connection_type, uri, {"x": 1}))
        with pytest.raises(ConnectionFailed, match="refused the connection"):
            await bad.test()
        with pytest.raises(ConnectionFailed, match="refused the connection"):
            await bad.connect(RecordingHandler())
        assert bad.status().state == "failed"


async def test_test_rejects_a_bad_uri() -> None:
    with pytest.raises(ConnectionFailed, match="tcp:// or ssl://"):
        await MqttClient(make_connection("mqtt", "http://127.0.0.1:1883")).test()


async def test_test_does_not_disturb_the_running_client(
    mosquitto: Mosquitto, clients: list[MqttClient], devices: list[Device]
) -> None:
    handler = RecordingHandler()
    connection = make_connection("mqtt", mosquitto.uri, {"probe/+": 1})
    client = MqttClient(connection)
    clients.append(client)
    await client.connect(handler)
    await MqttClient(connection).test()
    device = open_device(mosquitto, "mqtt")
    devices.append(device)
    device.publish("probe/a", "still here", qos=1)
    await handler.wait_until(lambda: "still here" in handler.texts)
    assert client.status().state == "open"


async def test_last_will_is_published_when_the_connection_breaks(
    own_mosquitto: Mosquitto, devices: list[Device]
) -> None:
    device = open_device(own_mosquitto, "mqtt", subscribe="wills/#")
    devices.append(device)
    client = MqttClient(
        make_connection(
            "mqtt",
            own_mosquitto.uri,
            specific={
                "lastWillTopic": "wills/conn",
                "lastWillMessage": "gone",
                "lastWillQos": "1",
                "keepAlive": "5s",
            },
        )
    )
    await client.connect(RecordingHandler())
    # Break the connection without DISCONNECT: close paho's socket under it.
    sock = client._paho.socket() if client._paho is not None else None
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)
    await eventually(lambda: any(m.topic == "wills/conn" for m in device.messages()), "last will published")
    assert [m.payload for m in device.messages() if m.topic == "wills/conn"] == [b"gone"]
    await client.close()
