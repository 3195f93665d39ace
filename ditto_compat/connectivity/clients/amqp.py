"""AMQP 0.9.1 client adapter on aio-pika (Ditto doc ``connectivity-protocol-bindings-amqp091``).

URI ``amqp://user:password@host:port/vhost`` (``amqps://`` for TLS). The connection is aio-pika's robust one:
after an outage it reconnects, reopens its channels and resumes consuming by itself.

Sources: every address is a queue name, which must exist (consuming from a missing queue fails the connection,
as in Ditto). Each address gets ``consumerCount`` consumers, each on its own channel with a prefetch window of
:data:`PREFETCH` unacknowledged messages. A consumer hands everything that arrived since its last call to the
handler in delivery order, then acknowledges the batch (``basic.ack`` with ``multiple``); when the handler
raises, the batch and everything delivered after it are rejected with ``requeue=true`` (``basic.nack``) so
the broker delivers them again in their order, after a growing pause. Inbound headers are the application
headers plus ``content-type``, ``correlation-id`` and ``reply-to`` from the message properties.

Targets: the address is ``exchange/routingKey``, split at the first ``/``; an empty exchange (``/queue``) is
the default exchange. ``content-type``, ``correlation-id`` and ``reply-to`` headers become the message
properties of the same names, every other header an application header. Publishing waits for the broker's
publisher confirm and raises when the broker rejects the message or the exchange does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    ChannelClosed,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    DeliveryError,
    ProbableAuthenticationError,
)

from ditto_compat.connectivity.clients.base import ClientStatus, ConnectionFailed, InboundHandler
from ditto_compat.connectivity.clients.errors import PublishFailed
from ditto_compat.connectivity.clients.status_tracker import StatusTracker
from ditto_compat.connectivity.clients.tls import TlsSettingsInvalid, tls_context
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Target

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 60.0
RECONNECT_INTERVAL_S = 2.0
PREFETCH = 256
MAX_BATCH = PREFETCH
FAILURE_BACKOFF_S = (0.5, 30.0)  # first and longest pause after a failed batch before it is handed over again
CLOSE_DRAIN_TIMEOUT_S = 10.0
_PROPERTY_HEADERS = {"content-type", "correlation-id", "reply-to"}


class AmqpClient:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._status = StatusTracker()
        self._amqp: AbstractRobustConnection | None = None
        self._consumers: list[_QueueConsumer] = []
        self._publish_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._publish_setup = asyncio.Lock()
        self._closing = False

    def status(self) -> ClientStatus:
        return self._status.get()

    async def connect(self, handler: InboundHandler) -> None:
        url = self._checked_uri()
        self._closing = False
        self._status.set("connecting", f"connecting to {_redacted(url)}")
        try:
            amqp = await aio_pika.connect_robust(
                url,
                ssl_context=self._ssl_context(url),
                timeout=CONNECT_TIMEOUT_S,
                reconnect_interval=RECONNECT_INTERVAL_S,
                client_properties={"connection_name": f"ditto-compat {self.connection.id}"},
            )
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            failure = _connection_failure(url, exc)
            self._status.set("failed", str(failure))
            raise failure from exc
        amqp.close_callbacks.add(self._on_connection_closed)
        amqp.reconnect_callbacks.add(self._on_reconnected)
        self._amqp = amqp
        try:
            for source in self.connection.sources:
                for address in source.addresses:
                    for _ in range(max(1, source.consumer_count)):
                        consumer = _QueueConsumer(self, source.index, address, handler)
                        self._consumers.append(consumer)
                        await consumer.start(amqp)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            await self.close()
            failure = _queue_failure(exc)
            self._status.set("failed", str(failure))
            raise failure from exc
        self._status.set("open")

    def _ssl_context(self, url: str) -> ssl.SSLContext | None:
        """amqps: the connection's ``ca`` and ``validateCertificates`` (clients/tls.py)."""
        if not url.lower().startswith("amqps:"):
            return None
        try:
            return tls_context(self.connection)
        except TlsSettingsInvalid as error:
            self._status.set("failed", str(error))
            raise ConnectionFailed(str(error)) from None

    async def test(self) -> None:
        url = self._checked_uri()
        try:
            amqp = await aio_pika.connect(url, ssl_context=self._ssl_context(url), timeout=CONNECT_TIMEOUT_S)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            raise _connection_failure(url, exc) from exc
        try:
            for source in self.connection.sources:
                for address in source.addresses:
                    channel = await amqp.channel()
                    try:
                        await channel.get_queue(address, ensure=True)
                    except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
                        raise _queue_failure(exc) from exc
                    finally:
                        with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                            await channel.close()
        finally:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await amqp.close()

    async def publish(self, message: ExternalMessage, target: Target) -> None:
        if self._amqp is None or self._closing:
            raise PublishFailed("the AMQP client is not connected")
        exchange_name, _, routing_key = message.address.partition("/")
        properties: dict[str, str] = {}
        headers: dict[str, Any] = {}
        for name, value in message.headers.items():
            if name.lower() in _PROPERTY_HEADERS:
                properties[name.lower()] = value
            else:
                headers[name] = value
        outgoing = aio_pika.Message(
            message.bytes_payload or b"",
            headers=headers,
            content_type=properties.get("content-type"),
            correlation_id=properties.get("correlation-id"),
            reply_to=properties.get("reply-to"),
        )
        try:
            exchange = await self._exchange(exchange_name)
            await exchange.publish(outgoing, routing_key, mandatory=False, timeout=PUBLISH_TIMEOUT_S)
        except DeliveryError as exc:
            raise PublishFailed(f"the broker rejected the message for {message.address!r}: {exc}") from exc
        except ChannelNotFoundEntity as exc:
            self._drop_publish_channel()
            raise PublishFailed(f"AMQP exchange {exchange_name!r} does not exist") from exc
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            self._drop_publish_channel()
            raise PublishFailed(f"publishing to {message.address!r} failed: {exc!r}") from exc

    async def close(self) -> None:
        self._closing = True
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(consumer.stop() for consumer in consumers), return_exceptions=True)
        amqp, self._amqp = self._amqp, None
        self._publish_channel = None
        self._exchanges.clear()
        if amqp is not None:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await amqp.close()
        self._status.set("closed")

    # ------------------------------------------------------------------------------------------ internals
    @property
    def closing(self) -> bool:
        return self._closing

    def _checked_uri(self) -> str:
        parts = urlsplit(self.connection.uri)
        if parts.scheme.lower() not in ("amqp", "amqps") or not parts.hostname:
            raise ConnectionFailed(
                f"AMQP 0.9.1 URI must be amqp://host:port/vhost or amqps://...: {parts.scheme}://..."
            )
        return self.connection.uri

    async def _exchange(self, name: str) -> AbstractExchange:
        async with self._publish_setup:
            channel = self._publish_channel
            if channel is None or channel.is_closed:
                if self._amqp is None:
                    raise PublishFailed("the AMQP client is not connected")
                channel = await self._amqp.channel(publisher_confirms=True)
                self._publish_channel = channel
                self._exchanges.clear()
            exchange = self._exchanges.get(name)
            if exchange is None:
                # ensure: a passive declare, so that a missing exchange is reported instead of the channel
                # closing under a later publish.
                exchange = (
                    channel.default_exchange if name == "" else await channel.get_exchange(name, ensure=True)
                )
                self._exchanges[name] = exchange
            return exchange

    def _drop_publish_channel(self) -> None:
        self._publish_channel = None
        self._exchanges.clear()

    def _on_connection_closed(self, _connection: Any, exc: BaseException | None = None) -> None:
        if not self._closing:
            self._status.set("connecting", f"connection lost ({exc!r}); reconnecting")

    def _on_reconnected(self, _connection: Any) -> None:
        if not self._closing:
            self._status.set("open")


class _QueueConsumer:
    """One consumer of one queue on its own channel: hands over messages in delivery order, acknowledges after."""

    def __init__(
        self, client: AmqpClient, source_index: int, queue_name: str, handler: InboundHandler
    ) -> None:
        self._client = client
        self._source_index = source_index
        self._queue_name = queue_name
        self._handler = handler
        self._pending: deque[AbstractIncomingMessage] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        # After a failed batch, until consuming resumes: whatever still arrives goes straight back.
        self._paused = False

    async def start(self, amqp: AbstractRobustConnection) -> None:
        self._channel = await amqp.channel(publisher_confirms=False)
        await self._channel.set_qos(prefetch_count=PREFETCH)
        self._queue = await self._channel.get_queue(self._queue_name, ensure=True)
        self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)
        self._task = asyncio.create_task(self._run(), name=f"amqp-consumer-{self._queue_name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._wakeup.set()
            _done, pending = await asyncio.wait([task], timeout=CLOSE_DRAIN_TIMEOUT_S)
            for still_running in pending:
                still_running.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # What was delivered but not handled goes back to the queue when the channel closes.
        if self._channel is not None:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._paused:
            await _settle([message], acknowledge=False, multiple=False)
            return
        # aio-pika starts one task per delivery, in delivery order; appending before any await keeps that order.
        self._pending.append(message)
        self._wakeup.set()

    async def _run(self) -> None:
        backoff = FAILURE_BACKOFF_S[0]
        while not self._client.closing:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), MAX_BATCH))]
            try:
                await self._handler([self._external(message) for message in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "connection %s: handling %d message(s) of queue %s failed, requeued: %s",
                    self._client.connection.id,
                    len(batch),
                    self._queue_name,
                    exc,
                )
                await self._requeue_and_pause(batch, backoff)
                backoff = min(backoff * 2, FAILURE_BACKOFF_S[1])
                continue
            backoff = FAILURE_BACKOFF_S[0]
            await _settle(batch, acknowledge=True)

    async def _requeue_and_pause(self, batch: list[AbstractIncomingMessage], pause_s: float) -> None:
        """Give the failed batch and everything delivered after it back to the broker, which puts them back in
        their places, and stop consuming for ``pause_s``: a message already on its way to us must not overtake
        the failed one, and a broken handler must not spin on redeliveries."""
        self._paused = True
        try:
            if self._queue is not None and self._consumer_tag is not None:
                with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                    await self._queue.cancel(self._consumer_tag)
                self._consumer_tag = None
            later = list(self._pending)
            self._pending.clear()
            await _settle(batch + later, acknowledge=False)
            await asyncio.sleep(pause_s)
        finally:
            self._paused = False
        if self._queue is not None and not self._client.closing:
            self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)

    def _external(self, message: AbstractIncomingMessage) -> ExternalMessage:
        headers: dict[str, str] = {
            str(name): _header_text(value) for name, value in (message.headers or {}).items()
        }
        if message.content_type:
            headers["content-type"] = message.content_type
        if message.correlation_id:
            headers["correlation-id"] = str(message.correlation_id)
        if message.reply_to:
            headers["reply-to"] = message.reply_to
        text, payload = _split_body(message.body, message.content_type)
        return ExternalMessage(
            headers=headers,
            text=text,
            payload=payload,
            address=self._queue_name,
            source_index=self._source_index,
        )


async def _settle(
    messages: Sequence[AbstractIncomingMessage], *, acknowledge: bool, multiple: bool = True
) -> None:
    """Ack or nack (requeue) ``messages``; with ``multiple``, one frame per channel: the last delivery tag of a
    channel covers every earlier one, and these are all ours, in order."""
    if multiple:
        last_per_channel: dict[int, AbstractIncomingMessage] = {}
        for message in messages:
            last_per_channel[id(message.channel)] = message
        messages = list(last_per_channel.values())
    for message in messages:
        try:
            if acknowledge:
                await message.ack(multiple=multiple)
            else:
                await message.nack(multiple=multiple, requeue=True)
        except (ChannelInvalidStateError, ChannelClosed, *CONNECTION_EXCEPTIONS) as exc:
            # The channel that delivered them is gone: the broker has requeued them already.
            log.info("cannot settle deliveries on a closed channel: %r", exc)


def _header_text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _split_body(body: bytes, content_type: str | None) -> tuple[str | None, bytes | None]:
    if content_type and content_type.split(";", 1)[0].strip().lower() == "application/octet-stream":
        return None, body  # declared binary: stays bytes even when it happens to decode
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, body


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _connection_failure(url: str, exc: BaseException) -> ConnectionFailed:
    where = _redacted(url)
    if isinstance(exc, ProbableAuthenticationError):
        return ConnectionFailed(f"AMQP broker {where} refused the credentials: {exc}")
    if isinstance(exc, TimeoutError):
        return ConnectionFailed(
            f"cannot connect to AMQP broker {where}: no answer within {CONNECT_TIMEOUT_S:g}s"
        )
    return ConnectionFailed(f"cannot connect to AMQP broker {where}: {exc}")


def _queue_failure(exc: BaseException) -> ConnectionFailed:
    if isinstance(exc, ChannelNotFoundEntity):
        return ConnectionFailed(f"AMQP source queue does not exist: {exc}")
    return ConnectionFailed(f"consuming from the AMQP source queues failed: {exc!r}")
