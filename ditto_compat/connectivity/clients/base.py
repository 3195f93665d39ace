"""What a client adapter does for a connection, whatever its broker (DESIGN.md "Persist before acknowledge").

An adapter owns one broker library (paho-mqtt, aiokafka, aio-pika, httpx), its connection and reconnects with
backoff. It consumes the connection's sources and hands messages to the :class:`InboundHandler`, acknowledging
a message to the broker (Kafka offset commit, MQTT PUBACK, AMQP ack) only after the handler returned for it:
the handler returns once the resulting changes are durable, or the message was refused and logged. When the
handler raises, the message is not acknowledged and the broker redelivers it (AMQP nack with requeue, Kafka
seek back to the uncommitted offset, MQTT session redelivery on reconnect).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Target

# Called with messages of one source, in broker order (one for MQTT/AMQP, a fetched batch for Kafka).
InboundHandler = Callable[[Sequence[ExternalMessage]], Awaitable[None]]

ClientState = Literal["open", "closed", "failed", "connecting"]


class ConnectionFailed(Exception):
    """The broker could not be reached or refused the connection (bad URI, credentials, unknown host...)."""


@dataclass(frozen=True, slots=True)
class ClientStatus:
    state: ClientState
    detail: str = ""
    in_state_since: str = ""  # ISO-8601 UTC


class ClientAdapter(Protocol):
    connection: Connection

    async def connect(self, handler: InboundHandler) -> None:
        """Connect and start consuming every source. Raises :class:`ConnectionFailed` when the first attempt
        fails; once connected, outages are retried with backoff in the background."""
        ...

    async def test(self) -> None:
        """``dry-run``: connect once and disconnect; raises :class:`ConnectionFailed` with the reason."""
        ...

    async def publish(self, message: ExternalMessage, target: Target) -> None:
        """Send one mapped message to ``message.address`` (already resolved) with the target's QoS.
        Returns once the broker accepted it (MQTT QoS >= 1 PUBACK, Kafka ack, AMQP publisher confirm)."""
        ...

    async def close(self) -> None: ...

    def status(self) -> ClientStatus: ...
