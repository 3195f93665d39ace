"""The AMQP 0.9.1 client adapter against a real RabbitMQ (Ditto doc ``connectivity-protocol-bindings-amqp091``):
headers from message properties both ways, order, acknowledgement after the handler (requeue when it raises),
publisher confirms to ``exchange/routingKey``, reconnecting after the broker restarts, ``test()`` failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from ditto_compat.connectivity.clients.amqp import AmqpClient
from ditto_compat.connectivity.clients.base import ConnectionFailed
from ditto_compat.connectivity.clients.errors import PublishFailed
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Source, Target
from tests.brokers.amqp import RabbitMq
from tests.contract.brokers.recording import RecordingHandler, eventually
from tests.services import free_port


def make_connection(uri: str, queues: tuple[str, ...] = ()) -> Connection:
    return Connection(
        id=f"amqp-test-{uuid.uuid4().hex[:10]}",
        connection_type="amqp-091",
        connection_status="open",
        uri=uri,
        sources=tuple(
            Source(addresses=(queue,), authorization_context=("ditto:inbound",), index=index)
            for index, queue in enumerate(queues)
        ),
    )


TARGET = Target(address="unused", topics=(), authorization_context=("ditto:outbound",))


@pytest.fixture
async def channel(rabbitmq: RabbitMq) -> AsyncIterator[AbstractChannel]:
    """The test's own side of the broker: declares queues and exchanges, publishes as a device would."""
    connection: AbstractRobustConnection = await aio_pika.connect_robust(rabbitmq.uri())
    try:
        yield await connection.channel()
    finally:
        await connection.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[AmqpClient]]:
    opened: list[AmqpClient] = []
    yield opened
    for client in opened:
        await client.close()


async def fresh_queue(channel: AbstractChannel, durable: bool = False) -> str:
    name = f"q-{uuid.uuid4().hex[:10]}"
    await channel.declare_queue(name, durable=durable, auto_delete=False)
    return name


async def send(channel: AbstractChannel, queue: str, body: bytes, **properties: object) -> None:
    await channel.default_exchange.publish(aio_pika.Message(body, **properties), routing_key=queue)  # type: ignore[arg-type]


async def send_when_reconnected(channel: AbstractChannel, queue: str, body: bytes) -> None:
    """The test's own robust connection comes back on its own schedule: retry until it takes the message."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            await send(channel, queue, body)
            return
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


# ------------------------------------------------------------------------------------------------ inbound
async def test_consumes_with_headers_from_properties(
    rabbitmq: RabbitMq, channel: AbstractChannel, clients: list[AmqpClient]
) -> None:
    queue = await fresh_queue(channel)
    handler = RecordingHandler()
    client = AmqpClient(make_connection(rabbitmq.uri(), (queue,)))
    clients.append(client)
    await client.connect(handler)
    assert client.status().state == "open"

    await send(
        channel,
        queue,
        b'{"topic":"x"}',
        content_type="application/vnd.eclipse.ditto+json",
        correlation_id="corr-1",
        reply_to="replies",
        headers={"device-id": "d-1", "count": 3, "flag": True, "raw": bytearray(b"bytes")},
    )
    await send(channel, queue, b"\xff\x00", content_type="application/octet-stream")
    await handler.wait_for_count(2)

    first, second = handler.handled
    assert first.headers["content-type"] == "application/vnd.eclipse.ditto+json"
    assert first.headers["correlation-id"] == "corr-1"
    assert first.headers["reply-to"] == "replies"
    assert first.headers["device-id"] == "d-1"
    assert (first.headers["count"], first.headers["flag"], first.headers["raw"]) == ("3", "true", "bytes")
    assert first.text == '{"topic":"x"}' and first.address == queue and first.source_index == 0
    assert second.payload == b"\xff\x00" and second.text is None


async def test_keeps_queue_order(
    rabbitmq: RabbitMq, channel: AbstractChannel, clients: list[AmqpClient]
) -> None:
    queue = await fresh_queue(channel)
    count = 1500
    for i in range(count):
        await send(channel, queue, str(i).encode())
    handler = RecordingHandler()
    client = AmqpClient(make_connection(rabbitmq.uri(), (queue,)))
    clients.append(client)
    await client.connect(handler)
    await handler.wait_for_count(count)
    assert handler.texts == [str(i) for i in range(count)]
    assert len(handler.batch_sizes) < count  # messages that were waiting went over in batches


async def test_failed_handler_requeues_in_order(
    rabbitmq: RabbitMq, channel: AbstractChannel, clients: list[AmqpClient]
) -> None:
    queue = await fresh_queue(channel)
    seen: dict[str, int] = {}

    def fail_first_time(message: ExternalMessage) -> bool:
        text = message.text_payload or ""
        seen[text] = seen.get(text, 0) + 1
        return text == "m2" and seen[text] == 1

    handler = RecordingHandler(fail_first_time)
    client = AmqpClient(make_connection(rabbitmq.uri(), (queue,)))
    clients.append(client)
    await client.connect(handler)
    for text in ("m1", "m2", "m3", "m4"):
        await send(channel, queue, text.encode())
    await handler.wait_until(lambda: "m4" in handler.texts)

    assert any(m.text_payload == "m2" for m in handler.failed)
    assert handler.texts == ["m1", "m2", "m3", "m4"]


async def test_unhandled_messages_stay_in_the_queue_after_close(
    rabbitmq: RabbitMq, channel: AbstractChannel, clients: list[AmqpClient]
) -> None:
    queue = await fresh_queue(channel)
    handler = RecordingHandler(lambda message: True)  # never succeeds
    client = AmqpClient(make_connection(rabbitmq.uri(), (queue,)))
    await client.connect(handler)
    await send(channel, queue, b"keep-me")
    await handler.wait_until(lambda: len(handler.failed) >= 1)
    await client.close()

    again = RecordingHandler()
    client = AmqpClient(make_connection(rabbitmq.uri(), (queue,)))
    clients.append(client)
    await client.connect(again)
    await again.wait_for_count(1)
    assert again.texts == ["keep-me"]


# ----------------------------------------------------------------------------------------------- outbound
async def test_publishes_to_exchange_and_routing_key_with_properties(
    rabbitmq: RabbitMq, channel: AbstractChannel, clients: list[AmqpClient]
) -> None:
    exchange_name = f"x-{uuid.uuid4().hex[:8]}"
    exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, auto_delete=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="things.#")
    received: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def on_message(message: AbstractIncomingMessage) -> None:
        await message.ack()
        received.put_nowait(message)

    await queue.consume(on_message)
    client = AmqpClient(make_connection(rabbitmq.uri()))
    clients.append(client)
    await client.connect(RecordingHandler())

    await client.publish(
        ExternalMessage(
            headers={
                "content-type": "application/json",
                "correlation-id": "c-9",
                "reply-to": "answers",
                "thing-id": "org.example:t1",
            },
            text='{"v":1}',
            address=f"{exchange_name}/things.org.example",
        ),
        TARGET,
    )
    message = await asyncio.wait_for(received.get(), 10)
    assert message.body == b'{"v":1}'
    assert message.routing_key == "things.org.example"
    assert (message.content_type, message.correlation_id, message.reply_to) == (
        "application/json",
        "c-9",
        "answers",
    )
    assert message.headers == {"thing-id": "org.example:t1"}


async def test_publishes_to_the_default_exchange(
    rabbitmq: RabbitMq, channel: AbstractChannel, clients: list[AmqpClient]
) -> None:
    queue = await fresh_queue(channel)
    client = AmqpClient(make_connection(rabbitmq.uri()))
    clients.append(client)
    await client.connect(RecordingHandler())
    await client.publish(ExternalMessage(text="direct", address=f"/{queue}"), TARGET)
    declared = await channel.get_queue(queue)
    message = await declared.get(timeout=5, fail=True)
    assert message is not None and message.body == b"direct"
    await message.ack()


async def test_publish_to_a_missing_exchange_fails_and_the_client_recovers(
    rabbitmq: RabbitMq, channel: AbstractChannel, clients: list[AmqpClient]
) -> None:
    queue = await fresh_queue(channel)
    client = AmqpClient(make_connection(rabbitmq.uri()))
    clients.append(client)
    await client.connect(RecordingHandler())
    with pytest.raises(PublishFailed, match="does not exist"):
        await client.publish(ExternalMessage(text="x", address="no-such-exchange/key"), TARGET)
    await client.publish(ExternalMessage(text="after", address=f"/{queue}"), TARGET)
    message = await (await channel.get_queue(queue)).get(timeout=5, fail=True)
    assert message is not None and message.body == b"after"
    await message.ack()


# ------------------------------------------------------------------------------------------------- test()
async def test_test_fails_for_an_unreachable_port() -> None:
    client = AmqpClient(make_connection(f"amqp://guest:guest@127.0.0.1:{free_port()}/"))
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        await client.test()
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        await client.connect(RecordingHandler())
    assert client.status().state == "failed"


async def test_test_reports_bad_credentials(rabbitmq: RabbitMq) -> None:
    await AmqpClient(make_connection(rabbitmq.uri())).test()
    with pytest.raises(ConnectionFailed, match="refused the credentials"):
        await AmqpClient(make_connection(rabbitmq.uri(password="wrong"))).test()


async def test_test_and_connect_report_a_missing_queue(rabbitmq: RabbitMq) -> None:
    client = AmqpClient(make_connection(rabbitmq.uri(), ("no-such-queue",)))
    with pytest.raises(ConnectionFailed, match="does not exist"):
        await client.test()
    with pytest.raises(ConnectionFailed, match="does not exist"):
        await client.connect(RecordingHandler())
    assert client.status().state == "failed"


async def test_test_rejects_a_bad_uri() -> None:
    with pytest.raises(ConnectionFailed, match="amqp://"):
        await AmqpClient(make_connection("tcp://127.0.0.1:5672")).test()


# ---------------------------------------------------- last: restarts the session's broker on the same port
async def test_reconnects_after_the_broker_restarts(
    rabbitmq: RabbitMq, channel: AbstractChannel, clients: list[AmqpClient]
) -> None:
    queue = await fresh_queue(channel, durable=True)
    handler = RecordingHandler()
    client = AmqpClient(make_connection(rabbitmq.uri(), (queue,)))
    clients.append(client)
    await client.connect(handler)
    await send(channel, queue, b"before")
    await handler.wait_for_count(1)

    await asyncio.to_thread(rabbitmq.stop)
    await eventually(lambda: client.status().state == "connecting", "client notices the outage")
    await asyncio.to_thread(rabbitmq.start)
    await eventually(lambda: client.status().state == "open", "client open again", within_s=60)

    await send_when_reconnected(channel, queue, b"after")
    await handler.wait_until(lambda: "after" in handler.texts, within_s=30)
    await client.publish(ExternalMessage(text="out", address=f"/{queue}"), TARGET)
    await handler.wait_until(lambda: "out" in handler.texts, within_s=30)
    assert handler.texts == ["before", "after", "out"]
