"""An open connection: its client adapter with the inbound and outbound pipelines wired to it
(the :class:`~ditto_compat.connectivity.runtime.ConnectionRuntime` the manager drives)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ditto_compat.connectivity.clients.base import ClientAdapter, ClientStatus
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.inbound import InboundPipeline, compile_source
from ditto_compat.connectivity.mapping.base import MessageMapper
from ditto_compat.connectivity.mapping.registry import compile_conditions, conditions_hold, create_mapper
from ditto_compat.connectivity.model import Connection
from ditto_compat.connectivity.monitor import ConnectionMonitor
from ditto_compat.connectivity.outbound import OutboundPipeline, compile_target
from ditto_compat.connectivity.placeholders import Condition, PlaceholderSource
from ditto_compat.protocol.envelope import Envelope
from ditto_compat.service.acks import AckRouter
from ditto_compat.service.hub import EventHub
from ditto_compat.service.messages import MessageRouter
from ditto_compat.service.policy_announcements import PolicyAnnouncer
from ditto_compat.service.signals import SignalHandler

Clock = Callable[[], str]
DEFAULT_MAPPING = "Ditto"
# how long opening or closing waits for the connection announcement to be published
ANNOUNCE_TIMEOUT_S: Final = 5.0


def mappers_of(connection: Connection, payload_mapping: Sequence[str]) -> list[MessageMapper]:
    """The mappers a source or target names: ids of ``mappingDefinitions`` or built-in engine aliases; Ditto's
    own protocol mapping when it names none."""
    mappers: list[MessageMapper] = []
    for mapping_id in payload_mapping or (DEFAULT_MAPPING,):
        definition = connection.mapping_definitions.get(mapping_id)
        if definition is None:
            mappers.append(create_mapper(mapping_id, {}, connection_id=connection.id))
            continue
        mapper = create_mapper(definition.mapping_engine, definition.options, connection_id=connection.id)
        incoming = compile_conditions(definition.incoming_conditions)
        outgoing = compile_conditions(definition.outgoing_conditions)
        mappers.append(
            _Conditional(mapper, incoming, outgoing, connection.id) if incoming or outgoing else mapper
        )
    return mappers


@dataclass(frozen=True, slots=True)
class _Conditional:
    """A mapper that runs only where its definition's ``incomingConditions`` / ``outgoingConditions`` hold."""

    mapper: MessageMapper
    incoming: tuple[Condition, ...]
    outgoing: tuple[Condition, ...]
    connection_id: str

    def close(self) -> None:
        close = getattr(self.mapper, "close", None)
        if callable(close):
            close()

    def map_incoming(self, message: ExternalMessage) -> list[Envelope]:
        source = PlaceholderSource(
            headers=message.headers, connection_id=self.connection_id, source_address=message.address
        )
        return self.mapper.map_incoming(message) if conditions_hold(self.incoming, source) else []

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]:
        source = PlaceholderSource.for_envelope(envelope, connection_id=self.connection_id)
        return self.mapper.map_outgoing(envelope) if conditions_hold(self.outgoing, source) else []


class RunningConnection:
    def __init__(
        self,
        connection: Connection,
        monitor: ConnectionMonitor,
        *,
        client: ClientAdapter,
        signals: SignalHandler,
        hub: EventHub,
        messages: MessageRouter,
        clock: Clock,
        acks: AckRouter | None = None,
        announcer: PolicyAnnouncer | None = None,
    ) -> None:
        self.connection = connection
        self.monitor = monitor
        self._client = client
        self._signals = signals
        self._hub = hub
        self._messages = messages
        self._acks = acks
        self._announcer = announcer
        self._clock = clock
        self._outbound: OutboundPipeline | None = None
        self._mappers: list[MessageMapper] = []
        self._connected_since: str | None = None

    def _pipelines(self) -> tuple[InboundPipeline, OutboundPipeline]:
        """Compiled from the definition: mappers and placeholders fail here, before any broker is contacted."""
        connection = self.connection
        sources = [compile_source(s, mappers_of(connection, s.payload_mapping)) for s in connection.sources]
        targets = [compile_target(t, mappers_of(connection, t.payload_mapping)) for t in connection.targets]
        self._mappers = [m for route in sources for m in route.mappers] + [
            m for route in targets for m in route.mappers
        ]
        inbound = InboundPipeline(
            connection, sources, self._signals, self.monitor, self._client.publish, self._clock
        )
        outbound = OutboundPipeline(
            connection,
            targets,
            self._hub,
            self._messages,
            self.monitor,
            self._client.publish,
            self._clock,
            acks=self._acks,
            announcer=self._announcer,
        )
        return inbound, outbound

    async def open(self) -> None:
        inbound, outbound = self._pipelines()
        await self._client.connect(inbound.handle)
        self._connected_since = self._clock()
        outbound.start()
        self._outbound = outbound
        self.monitor.log("connection", "opened", "success", "Connection opened.", timestamp=self._clock())
        await self._announce(outbound, "opened", "openedAt")

    async def close(self) -> None:
        if self._outbound is not None:
            # while the client is still connected: the last thing its targets get
            await self._announce(self._outbound, "closed", "closedAt")
            await self._outbound.stop()
            self._outbound = None
        await self._client.close()
        self._connected_since = None
        for mapper in self._mappers:  # JavaScript mappers hold a V8 isolate each
            close = getattr(mapper, "close", None)
            if callable(close):
                close()
        self._mappers = []

    async def _announce(self, outbound: OutboundPipeline, name: str, field: str) -> None:
        """A connection announcement, waited for at most ANNOUNCE_TIMEOUT_S: a broker that does not answer must
        not hold up opening or closing the connection."""
        try:
            async with asyncio.timeout(ANNOUNCE_TIMEOUT_S):
                await outbound.announce(name, {field: self._clock()})
        except TimeoutError:
            self.monitor.log(
                "connection",
                "dispatched",
                "failure",
                f"The connection announcement '{name}' was not published within {ANNOUNCE_TIMEOUT_S:g} s.",
                timestamp=self._clock(),
            )

    async def test(self) -> None:
        self._pipelines()
        await self._client.test()

    def status(self) -> dict[str, Any]:
        client = self._client.status()
        live = _live_status(client)
        since = client.in_state_since or self._connected_since or self._clock()
        client_status = {
            "type": "client",
            "client": "ditto-compat",
            "status": live,
            "statusDetails": client.detail or _DETAILS[live],
            "inStateSince": since,
        }
        return {
            "liveStatus": live,
            "connectedSince": self._connected_since,
            "clientStatus": [client_status],
            "sourceStatus": [
                _resource("source", address, live, since)
                for source in self.connection.sources
                for address in source.addresses
            ],
            "targetStatus": [
                _resource("target", target.address, live, since) for target in self.connection.targets
            ],
        }


_DETAILS: Mapping[str, str] = {
    "open": "Connected.",
    "closed": "Closed.",
    "failed": "The connection failed.",
    "unknown": "Connecting.",
}


def _live_status(client: ClientStatus) -> str:
    return "unknown" if client.state == "connecting" else client.state


def _resource(kind: str, address: str, live: str, since: str) -> dict[str, Any]:
    return {
        "type": kind,
        "client": "ditto-compat",
        "address": address,
        "status": live,
        "statusDetails": _DETAILS[live],
        "inStateSince": since,
    }
