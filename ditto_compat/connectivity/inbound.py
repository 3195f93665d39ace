"""A connection's sources into the one command path (``basic-connections`` "Sources",
``connectivity-header-mapping``, ``connectivity-mapping``).

For every message a client adapter consumed: payload mapping into Ditto Protocol envelopes, header mapping,
``enforcement``, the authorization subjects of the source, then the same dispatcher and policy checks as HTTP.
A batch (a Kafka fetch) is applied with per-thing order kept. The Things whose messages are all twin
modifications (the telemetry case) are applied as one batch by the dispatcher: one lock round, one read of
their states and policies, one store round trip. For the other Things, the messages of one Thing run one after
the other, different Things concurrently, so that their commits share the store's group commit round.

:meth:`InboundPipeline.handle` returns once every resulting change is durable, which is when the adapter
acknowledges to the broker. A message that cannot be mapped, or that a policy refuses, is counted and logged in
the connection's monitor and answered on the reply target if there is one; it never stops the connection. Only
an unavailable store raises, so that the broker redelivers instead of losing the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.base import MessageMapper
from ditto_compat.connectivity.model import Connection, Source, Target
from ditto_compat.connectivity.monitor import ConnectionMonitor
from ditto_compat.connectivity.placeholders import PlaceholderSource, Template, compile_template
from ditto_compat.domain.auth import AuthContext
from ditto_compat.errors import DittoError
from ditto_compat.persistence.ports import StoreUnavailable
from ditto_compat.protocol.envelope import Envelope
from ditto_compat.protocol.things import error_envelope
from ditto_compat.service.signals import SignalHandler

log = logging.getLogger(__name__)

# Publishes one mapped reply (response or error) to a reply target.
ReplyPublisher = Callable[[ExternalMessage, Target], Awaitable[None]]
Clock = Callable[[], str]


class EnforcementFailed(DittoError):
    status = 400
    error_code = "connectivity:connection.signal.enforcement.failed"
    default_message = "The configured filters could not be matched against the given target."
    default_description = "Either modify the configured filters or the target of the signal."


class AuthorizationContextUnresolved(DittoError):
    status = 403
    error_code = "connectivity:connection.authorization.unresolved"
    default_message = "The authorization context of the source could not be resolved for this message."
    default_description = "Check the header placeholders of the source's 'authorizationContext'."


@dataclass(frozen=True, slots=True)
class _Enforcement:
    input: Template
    filters: tuple[Template, ...]


@dataclass(frozen=True, slots=True)
class _Reply:
    address: Template
    header_mapping: tuple[tuple[str, Template], ...]
    kinds: frozenset[str]  # "response", "error"
    target: Target  # carries the source's qos for the adapter's publish


@dataclass(frozen=True, slots=True)
class SourceRoute:
    """One source, compiled once when the connection opens."""

    source: Source
    mappers: tuple[MessageMapper, ...]
    header_mapping: tuple[tuple[str, Template], ...]
    subjects: tuple[Template, ...]
    static_auth: AuthContext | None  # when no subject has a placeholder
    enforcement: _Enforcement | None
    reply: _Reply | None


def compile_source(source: Source, mappers: Sequence[MessageMapper]) -> SourceRoute:
    subjects = tuple(compile_template(s) for s in source.authorization_context)
    static = all("{{" not in s for s in source.authorization_context)
    enforcement = None
    if source.enforcement is not None:
        enforcement = _Enforcement(
            compile_template(source.enforcement.input),
            tuple(compile_template(f) for f in source.enforcement.filters),
        )
    reply = None
    target = source.reply_target
    if target is not None and target.enabled and target.address:
        reply = _Reply(
            compile_template(target.address),
            tuple((k, compile_template(v)) for k, v in target.header_mapping.items()),
            frozenset(target.expected_response_types),
            Target(address=target.address, topics=(), authorization_context=(), qos=source.qos),
        )
    return SourceRoute(
        source=source,
        mappers=tuple(mappers),
        header_mapping=tuple((k, compile_template(v)) for k, v in source.header_mapping.items()),
        subjects=subjects,
        static_auth=AuthContext(tuple(source.authorization_context)) if static else None,
        enforcement=enforcement,
        reply=reply,
    )


@dataclass(slots=True)
class _Work:
    message: ExternalMessage
    route: SourceRoute
    envelope: Envelope
    auth: AuthContext


class InboundPipeline:
    def __init__(
        self,
        connection: Connection,
        routes: Sequence[SourceRoute],
        signals: SignalHandler,
        monitor: ConnectionMonitor,
        publish_reply: ReplyPublisher,
        clock: Clock,
    ) -> None:
        self._connection = connection
        self._routes = {route.source.index: route for route in routes}
        self._signals = signals
        self._monitor = monitor
        self._publish_reply = publish_reply
        self._clock = clock
        self._replies: set[asyncio.Task[None]] = set()
        # inbound counts of the batches under way, handed to the monitor once per batch rather than per message
        self._tally: dict[tuple[str, bool, str], int] = {}

    async def handle(self, messages: Sequence[ExternalMessage]) -> None:
        """Apply a batch of one source's messages; returns when their changes are durable."""
        started = time.perf_counter()
        try:
            with self._signals.batch():
                await self._apply_batch(messages)
        finally:
            self._flush_tally()
        self._monitor.batch(time.perf_counter() - started, len(messages))

    def _count(self, kind: str, success: bool, address: str) -> None:
        key = (kind, success, address)
        self._tally[key] = self._tally.get(key, 0) + 1

    def _flush_tally(self) -> None:
        tally, self._tally = self._tally, {}
        for (kind, success, address), count in tally.items():
            self._monitor.record("inbound", kind, success, address, count)

    async def _apply_batch(self, messages: Sequence[ExternalMessage]) -> None:
        lanes: dict[str, list[_Work]] = {}
        for message in messages:
            for work in self._prepare(message):
                lanes.setdefault(work.envelope.topic.entity_id, []).append(work)
        if not lanes:
            return
        modifies = self._signals.is_twin_modification
        batched: list[_Work] = []
        jobs: list[Awaitable[None]] = []
        for lane in lanes.values():
            if all(modifies(work.envelope) for work in lane):
                batched.extend(lane)
            else:
                jobs.append(self._run_lane(lane))
        if batched:
            jobs.append(self._apply_modifications(batched))
        if len(jobs) == 1:
            await jobs[0]
            return
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # ------------------------------------------------------------------------------------------ mapping
    def _prepare(self, message: ExternalMessage) -> list[_Work]:
        """Map one message into the commands it carries; a failure is logged and yields none."""
        route = self._routes.get(message.source_index)
        address = message.counted_under
        self._count("consumed", True, address)
        if route is None:  # the adapter consumed from a source this connection no longer has
            self._count("dropped", True, address)
            return []
        # only a source with header mapping or subject placeholders needs them (telemetry usually has neither)
        needs_placeholders = bool(route.header_mapping) or route.static_auth is None
        placeholders = self._placeholders(message, None) if needs_placeholders else None
        try:
            envelopes: list[Envelope] = []
            for mapper in route.mappers:
                envelopes.extend(mapper.map_incoming(message))
        except DittoError as error:
            self._count("mapped", False, address)
            self._log_failure("source", "mapped", error, message, None)
            return []
        self._count("mapped", True, address)
        if not envelopes:
            self._count("dropped", True, address)
            return []
        mapped_headers = self._mapped_headers(route, placeholders) if placeholders is not None else {}
        work: list[_Work] = []
        for envelope in envelopes:
            if mapped_headers:
                envelope = _with_headers(envelope, mapped_headers)
            try:
                auth = self._auth(route, placeholders)
                self._enforce(route, message, envelope)
            except DittoError as error:
                self._count("enforced", False, address)
                self._log_failure("source", "enforced", error, message, envelope)
                self._schedule_reply(route, message, envelope, error_envelope(error, envelope.topic, {}))
                continue
            work.append(_Work(message, route, envelope, auth))
        return work

    def _placeholders(self, message: ExternalMessage, envelope: Envelope | None) -> PlaceholderSource:
        topic = envelope.topic if envelope is not None else None
        headers: dict[str, Any] = dict(message.headers)
        if envelope is not None:
            headers.update({str(k): v for k, v in envelope.headers.items()})
        return PlaceholderSource(
            headers=headers,
            thing_id=topic.entity_id if topic is not None and topic.group == "things" else None,
            topic=topic,
            path=envelope.path if envelope is not None else None,
            connection_id=self._connection.id,
            source_address=message.address,
        )

    @staticmethod
    def _mapped_headers(route: SourceRoute, placeholders: PlaceholderSource) -> dict[str, str]:
        mapped: dict[str, str] = {}
        for name, template in route.header_mapping:
            value = template.resolve(placeholders)
            if value is not None:  # an unresolvable header is left out, as Ditto does
                mapped[name] = value
        return mapped

    @staticmethod
    def _auth(route: SourceRoute, placeholders: PlaceholderSource | None) -> AuthContext:
        if route.static_auth is not None:
            return route.static_auth
        assert placeholders is not None  # resolved for every source whose subjects have placeholders
        subjects = tuple(s for s in (t.resolve(placeholders) for t in route.subjects) if s)
        if not subjects:
            raise AuthorizationContextUnresolved()
        return AuthContext(subjects)

    def _enforce(self, route: SourceRoute, message: ExternalMessage, envelope: Envelope) -> None:
        enforcement = route.enforcement
        if enforcement is None:
            return
        given = enforcement.input.resolve(self._placeholders(message, None))
        entity = self._placeholders(message, envelope)
        expected = [f.resolve(entity) for f in enforcement.filters]
        if given is None or given not in expected:
            raise EnforcementFailed(
                f"The configured filters could not be matched against the given target with ID "
                f"'{envelope.topic.entity_id}'."
            )

    # ------------------------------------------------------------------------------------------ applying
    async def _run_lane(self, lane: list[_Work]) -> None:
        for work in lane:
            await self._apply(work)

    async def _apply_modifications(self, batch: list[_Work]) -> None:
        # StoreUnavailable propagates: nothing of the batch is acknowledged, the broker redelivers
        respond = any(work.route.reply is not None for work in batch)  # else responses go nowhere
        answers = await self._signals.handle_modifications(
            [(w.envelope, w.auth) for w in batch], respond=respond
        )
        for work, answer in zip(batch, answers, strict=True):
            await self._settle(work, answer)

    async def _apply(self, work: _Work) -> None:
        try:
            answer = await self._signals.handle(work.envelope, work.auth)
        except StoreUnavailable:
            raise  # not acknowledged: the broker redelivers
        except Exception as error:
            await self._settle(work, error)
            return
        await self._settle(work, answer)

    async def _settle(self, work: _Work, answer: Envelope | BaseException | None) -> None:
        """Count, log and answer one applied (or refused) message."""
        envelope = work.envelope
        address = work.message.counted_under
        if isinstance(answer, StoreUnavailable):
            raise answer
        if isinstance(answer, DittoError):
            self._count("acknowledged", False, address)
            self._log_failure("source", "dispatched", answer, work.message, envelope)
            await self._reply(work.route, work.message, envelope, error_envelope(answer, envelope.topic, {}))
            return
        if isinstance(answer, BaseException):  # a bug must not stop the connection; the message is logged
            log.error(
                "connection %s: applying %s failed", self._connection.id, envelope.topic, exc_info=answer
            )
            self._count("acknowledged", False, address)
            self._log_failure("source", "dispatched", DittoError(str(answer)), work.message, envelope)
            return
        self._count("acknowledged", True, address)
        if answer is not None:
            await self._reply(work.route, work.message, envelope, answer)

    # ------------------------------------------------------------------------------------------ replies
    def _schedule_reply(
        self, route: SourceRoute, message: ExternalMessage, envelope: Envelope, answer: Envelope
    ) -> None:
        if route.reply is not None:
            task = asyncio.get_running_loop().create_task(self._reply(route, message, envelope, answer))
            # held until done: the loop keeps only a weak reference to a task
            self._replies.add(task)
            task.add_done_callback(self._reply_done)

    def _reply_done(self, task: asyncio.Task[None]) -> None:
        self._replies.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("reply failed", exc_info=task.exception())

    async def _reply(
        self, route: SourceRoute, message: ExternalMessage, command: Envelope, answer: Envelope
    ) -> None:
        """Send the response or error to the source's reply target, when it wants that kind."""
        reply = route.reply
        if reply is None:
            return
        kind = "error" if answer.topic.criterion == "errors" else "response"
        if kind not in reply.kinds or _header(command, "response-required") == "false":
            return
        answer = _with_headers(answer, _reply_headers(command))
        placeholders = self._placeholders(message, command)
        address = reply.address.resolve(placeholders)
        if address is None:
            self._monitor.record("outbound", "dropped", True, "reply")
            return
        try:
            outgoing: list[ExternalMessage] = []
            for mapper in route.mappers:
                outgoing.extend(mapper.map_outgoing(answer))
        except DittoError as error:
            self._log_failure("response", "mapped", error, message, command)
            return
        for out in outgoing:
            out.address = address
            for name, template in reply.header_mapping:
                value = template.resolve(placeholders)
                if value is not None:
                    out.headers[name] = value
            try:
                await self._publish_reply(out, reply.target)
            except Exception as error:  # a reply that cannot be sent is logged; the command was applied
                # counted under the reply target as configured (Ditto's original address), not as resolved
                self._monitor.record("outbound", "published", False, reply.target.address)
                self._log_failure("response", "published", DittoError(str(error)), message, command)
                continue
            self._monitor.record("outbound", "published", True, reply.target.address)

    def _log_failure(
        self,
        category: Any,
        step: str,
        error: DittoError,
        message: ExternalMessage,
        envelope: Envelope | None,
    ) -> None:
        correlation = (envelope.correlation_id if envelope is not None else None) or message.header(
            "correlation-id"
        )
        entity = envelope.topic.entity_id if envelope is not None else None
        self._monitor.log(
            category,
            step,
            "failure",
            f"{error.error_code}: {error.message}" + (f" {error.description}" if error.description else ""),
            timestamp=self._clock(),
            address=message.address,
            correlation_id=correlation,
            entity_id=entity,
        )


def _header(envelope: Envelope, name: str) -> str | None:
    value = envelope.header(name)
    return None if value is None else str(value).lower()


def _reply_headers(command: Envelope) -> dict[str, Any]:
    """What a reply carries back from its command: the correlation-id (and reply-to, for placeholders)."""
    out: dict[str, Any] = {}
    for name in ("correlation-id", "reply-to"):
        value = command.header(name)
        if value is not None:
            out[name] = value
    return out


def _with_headers(envelope: Envelope, headers: dict[str, Any]) -> Envelope:
    return replace(envelope, headers={**envelope.headers, **headers})
