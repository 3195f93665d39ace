"""``/ws/2``: the Ditto Protocol over WebSocket (``httpapi-protocol-bindings-websocket``, inventory §5).

A session authenticates on the upgrade, exactly as HTTP does (Basic, or a pre-authenticated subject behind a
proxy); an unauthenticated upgrade is refused with 401. Text frames are either control messages
(``START-SEND-EVENTS?namespaces=..&filter=..&extraFields=..`` and the other ``START-``/``STOP-SEND-*``,
answered with exactly ``<TYPE>:ACK``) or Ditto Protocol JSON messages: thing and policy commands go through
the same dispatcher and policy checks as HTTP, and their responses and errors come back as protocol messages.

Live signals. Messages and live commands a client sends go to the other sessions that asked for them
(``START-SEND-MESSAGES`` / ``-LIVE-COMMANDS``) and may READ them, never back to the sender; the first reply with
the same correlation-id is the sender's answer. Live events go to the other ``START-SEND-LIVE-EVENTS``
subscribers.

Acknowledgements (``basic-acknowledgements``). A session declares the labels it issues on connect
(``declared-acks``, query parameter or header) and issues them with ``<ns>/<name>/things/<channel>/acks/<label>``
frames. A command, message or live command that requests more than its channel's own acknowledgement is
answered with the aggregated ``<ns>/<name>/things/<channel>/acks`` frame. A session that declared a requested
label but does not get the event (its filter, namespaces or policy exclude it) answers at once with a weak
acknowledgement (``ditto-weak-ack: true``, service/acks.py), as Ditto does.

Ordering. Commands run concurrently (a slow one does not hold up the socket), and one writer task sends
every frame. An event that carries the correlation-id of a command whose response is not sent yet is held
back until that response has gone out, so a client always sees a command's response before its event; only a
command that waits for acknowledgements lets its events go once it is committed, since they may be what the
acknowledgements answer.

Back-pressure. The hub hands each event of the session's streams (a
:class:`~ditto_compat.service.hub.Subscription` with a sink) straight to the session's bounded outbound queue,
rendered once for every session that sees it alike; no task per stream stands in between. A client that does
not read fills that queue, and the next event overflows its stream, which the hub closes and counts. The
session tells the client with an error frame and closes the socket (code 1013, "try again later"): events are
never dropped silently.

Compression. permessage-deflate is off unless the server runs with ``--ws-compression``: Ditto never
negotiates it, and compressing each frame once per session was the largest per-frame cost with many
subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from ditto_compat.api.context import AppContext
from ditto_compat.api.http import error_response, within_timeout
from ditto_compat.api.ws_streaming import ReactiveStreams
from ditto_compat.domain import thing_enforcement as guard
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.enforcer import WRITE
from ditto_compat.domain.events import ACTIONS, ThingChange, ThingEvent
from ditto_compat.domain.policy_commands import PolicyCommand
from ditto_compat.domain.resources import resource_of, thing_not_found
from ditto_compat.domain.thing_enforcement import thing_resource
from ditto_compat.domain.things import ThingCommand
from ditto_compat.errors import CommandTimeout, DittoError, HeaderInvalid
from ditto_compat.model.headers import DEFAULT_TIMEOUT_S as DEFAULT_COMMAND_TIMEOUT_S
from ditto_compat.model.headers import new_correlation_id, parse_bool, parse_timeout
from ditto_compat.model.pointer import MISSING, parse_pointer
from ditto_compat.protocol.envelope import Envelope, Topic, header_text, parse_envelope, salvage
from ditto_compat.protocol.policies import policy_command, policy_response
from ditto_compat.protocol.things import (
    RetrieveThings,
    error_envelope,
    retrieve_things_response,
    thing_command,
    thing_response,
    thing_topic,
)
from ditto_compat.service.acks import (
    LIVE_RESPONSE,
    Ack,
    AckRequest,
    ack_request,
    combined_status,
    parse_requested_acks,
    persisted_acks,
    requested_labels,
)
from ditto_compat.service.dispatcher import utc_now
from ditto_compat.service.hub import Delivery, Subscription, subscription_for
from ditto_compat.service.messages import (
    CLAIM_DEFAULT_TIMEOUT_S,
    CLAIM_MAX_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    MAX_PAYLOAD_BYTES,
    MAX_TIMEOUT_S,
    MessagePayloadTooLarge,
    MessageReply,
    MessageSubjectInvalid,
    MessageTimeout,
    ThingMessage,
    message_target,
)
from ditto_compat.service.signal_envelopes import event_envelope, message_envelope

log = logging.getLogger(__name__)

OUTBOUND_FRAMES = 256  # frames waiting for the socket; beyond that, event streams back up into their queues
MAX_COMMANDS_IN_FLIGHT = 100
CLOSE_OVERFLOW = 1013  # "try again later": the client could not keep up with its events

STREAMS = ("EVENTS", "MESSAGES", "LIVE-COMMANDS", "LIVE-EVENTS", "POLICY-ANNOUNCEMENTS")


class EventsOverflowed(DittoError):
    status = 503
    error_code = "gateway:websocket.events.overflowed"
    default_message = "The WebSocket client did not receive its events fast enough; events were dropped."
    default_description = (
        "Consume events faster or subscribe to fewer (namespaces, filter), then reconnect. "
        "The number of dropped events is in the 'dropped-events' header."
    )


class ProtocolMessageUnsupported(DittoError):
    status = 400
    error_code = "things:protocol.message.unsupported"
    default_message = "The Ditto Protocol message is not supported on this endpoint."


class StreamingTypeInvalid(DittoError):
    status = 400
    error_code = "gateway:streaming.type.invalid"
    default_message = "The control message is unknown."
    default_description = "Use START-SEND-EVENTS, START-SEND-MESSAGES, START-SEND-LIVE-COMMANDS, " + (
        "START-SEND-LIVE-EVENTS, START-SEND-POLICY-ANNOUNCEMENTS or their STOP-SEND-* counterparts."
    )


def _ctx(websocket: WebSocket) -> AppContext:
    ctx: AppContext = websocket.app.state.ctx
    return ctx


async def ws_endpoint(websocket: WebSocket) -> None:
    ctx = _ctx(websocket)
    try:
        auth = ctx.authenticator.authenticate(websocket.headers, websocket.query_params)
    except DittoError as error:
        await _refuse(websocket, error)
        return
    session = WsSession(websocket, ctx, auth)
    try:
        ctx.acks.declare(_declared_acks(websocket), session)
    except DittoError as error:
        await _refuse(websocket, error)
        return
    await websocket.accept()
    try:
        await session.run()
    finally:
        ctx.acks.release(session)


def _declared_acks(websocket: WebSocket) -> tuple[str, ...]:
    """``declared-acks`` as a query parameter (``/ws/2?declared-acks=a:b,c:d``) or, as Ditto's Java client sends
    it, a header of the upgrade (a JSON array or a comma-separated list)."""
    labels: list[str] = []
    for text in (websocket.query_params.get("declared-acks"), websocket.headers.get("declared-acks")):
        if text:
            labels.extend(parse_requested_acks(text) or ())
    return tuple(dict.fromkeys(labels))


async def _refuse(websocket: WebSocket, error: DittoError) -> None:
    """Answer the upgrade with the HTTP error (uvicorn supports the denial response extension); a server that
    does not gets a close before accept, which it turns into 403."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(error, None))
    else:
        await websocket.close(code=1008)


@dataclass(frozen=True)
class _CloseAfterFlush:
    """Queued behind the last frames a session sends: the writer closes the socket once they are out."""

    code: int
    reason: str


@dataclass(eq=False)
class WsSession:
    websocket: WebSocket
    ctx: AppContext
    auth: AuthContext
    # Frames waiting for the socket: responses, messages and the events of the session's streams, which the hub
    # puts here directly (service/hub.py ``sink``). When it is full, an event stream overflows.
    _outbound: asyncio.Queue[str | _CloseAfterFlush | None] = field(init=False)
    _streams: dict[str, Subscription] = field(default_factory=dict)
    # correlation-id -> event frames held back until the command's response is sent
    _awaiting_response: dict[str, list[str]] = field(default_factory=dict)
    _commands: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_COMMANDS_IN_FLIGHT))
    _closing: bool = False
    _reactive: ReactiveStreams = field(default_factory=ReactiveStreams)  # search/streaming subscriptions
    namespaces: frozenset[str] | None = None  # of the messages this session receives
    live_namespaces: frozenset[str] | None = None  # of the live commands it receives

    def __post_init__(self) -> None:
        self._outbound = asyncio.Queue(OUTBOUND_FRAMES + self.ctx.settings.event_queue_size)

    @property
    def subjects(self) -> tuple[str, ...]:
        return self.auth.subjects

    async def run(self) -> None:
        writer = asyncio.create_task(self._write_frames())
        try:
            while not self._closing:
                try:
                    text = await self.websocket.receive_text()
                except (WebSocketDisconnect, RuntimeError, KeyError):
                    # KeyError: a binary frame (Ditto speaks text only); RuntimeError: socket already closed
                    break
                await self._on_frame(text)
        finally:
            self._closing = True
            self.ctx.messages.remove(self)
            self.ctx.messages.remove_live(self)
            self.ctx.announcements.remove(self)
            self._reactive.close()
            for stream in self._streams.values():
                self.ctx.hub.remove(stream)
            self._streams.clear()
            for task in list(self._commands):
                task.cancel()
            with contextlib.suppress(asyncio.QueueFull):
                self._outbound.put_nowait(None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    # ------------------------------------------------------------------------------------------ frames in
    async def _on_frame(self, text: str) -> None:
        stripped = text.strip()
        if stripped.startswith(("START-SEND-", "STOP-SEND-")):
            await self._on_control(stripped)
            return
        if stripped.startswith("JWT-TOKEN"):
            return  # no JWT support: Basic and pre-authenticated subjects are fixed for the session
        await self._slots.acquire()
        task = asyncio.create_task(self._on_protocol_message(text))
        self._commands.add(task)
        task.add_done_callback(self._command_done)

    def _command_done(self, task: asyncio.Task[None]) -> None:
        self._commands.discard(task)
        self._slots.release()

    async def _on_protocol_message(self, text: str) -> None:
        envelope: Envelope | None = None
        headers: dict[str, Any] = {}
        held: list[str] = []  # events of this command that arrived before its response (or its error)
        try:
            envelope = parse_envelope(text)
            headers = _echo_headers(envelope.headers)
            correlation_id = headers.get("correlation-id")
            if correlation_id:
                self._awaiting_response.setdefault(correlation_id, [])
            try:
                response = await self._handle(envelope, headers)
            finally:
                held = self._awaiting_response.pop(correlation_id, []) if correlation_id else []
            if response is not None:
                await self._send(orjson.dumps(response.to_json()).decode())
        except DittoError as error:
            if envelope is None:
                topic, salvaged = salvage(text)
                headers = _echo_headers(salvaged)
            else:
                topic = envelope.topic
            await self._send_error(error, topic, headers)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("WebSocket protocol message failed")
            topic = envelope.topic if envelope is not None else None
            await self._send_error(DittoError(), topic, headers)
        for frame in held:
            await self._send(frame)

    async def _handle(self, envelope: Envelope, headers: dict[str, Any]) -> Envelope | None:
        topic = envelope.topic
        if topic.group == "things" and topic.channel == "twin" and topic.criterion == "commands":
            parsed = thing_command(envelope)
            if isinstance(parsed, RetrieveThings):
                return await self._retrieve_things(envelope, parsed, headers)
            return await self._thing_command(parsed, headers, envelope)
        if topic.group == "things" and topic.criterion == "acks" and topic.action:
            ack = Ack(topic.action, envelope.status or 200, dict(envelope.headers), envelope.value)
            self.ctx.acks.issue_from(self, envelope.correlation_id or "", ack)
            return None
        if topic.group == "things" and topic.channel == "live" and topic.criterion == "commands":
            if envelope.status is not None:  # a live response to a live command this session received
                answer = MessageReply(envelope.status, dict(envelope.headers), envelope.value)
                self.ctx.messages.reply(envelope.correlation_id or "", answer)
                return None
            return await self._live_command(envelope, headers)
        if topic.group == "things" and topic.channel == "live" and topic.criterion == "events":
            await self._live_event(envelope)
            return None
        if topic.group == "things" and topic.channel == "live" and topic.criterion == "messages":
            return await self._message(envelope, headers)
        if topic.group == "policies" and topic.criterion == "commands":
            return await self._policy_command(policy_command(envelope), headers)
        if topic.criterion in ("search", "streaming"):
            await self._reactive.handle(envelope, headers, self.ctx, self.auth, self._send)
            return None
        raise ProtocolMessageUnsupported(
            f"The Ditto Protocol message with topic '{topic}' is not supported.",
            "Send twin Thing commands or Policy commands.",
        )

    async def _thing_command(
        self, cmd: ThingCommand, headers: dict[str, Any], envelope: Envelope
    ) -> Envelope | None:
        cmd.resource  # noqa: B018  (validates the path before any I/O)
        if cmd.action == "retrieve":
            outcome = await within_timeout(
                self.ctx.dispatcher.handle(cmd, self.auth), _wait_s(cmd.headers.timeout_s), cmd.type
            )
            return thing_response(cmd, outcome, headers) if cmd.headers.response_required else None
        acks = _ack_request(envelope, cmd.headers.timeout_s, "twin")
        if acks.only_implicit:
            outcome = await within_timeout(
                self.ctx.dispatcher.handle(cmd, self.auth), _wait_s(acks.timeout_s), cmd.type
            )
            return thing_response(cmd, outcome, headers) if acks.response_required else None
        correlation_id = cmd.headers.correlation_id
        with self.ctx.acks.pending(correlation_id, acks) as pending:
            event_headers = {"requested-acks": orjson.dumps(list(acks.labels)).decode()}
            outcome = await within_timeout(
                self.ctx.dispatcher.handle(cmd, self.auth, event_headers=event_headers),
                acks.timeout_s,
                cmd.type,
            )
            # the acknowledgements need the event: it may not wait for the response any longer
            await self._release_held(correlation_id)
            ack_headers = {
                "correlation-id": correlation_id,
                **({"etag": outcome.etag} if outcome.etag else {}),
            }
            collected = await pending.collect(
                persisted_acks(acks.labels, outcome.status, ack_headers, outcome.value)
            )
        return acks_envelope(
            thing_topic(cmd.thing_id, "twin", "acks", None), headers, correlation_id, collected
        )

    async def _live_command(self, envelope: Envelope, headers: dict[str, Any]) -> Envelope | None:
        """A live command this session sends (``protocol-twinlive``): authorized against the twin's policy as on
        the twin channel, offered to the other sessions that sent ``START-SEND-LIVE-COMMANDS`` and may READ the
        addressed resource; their live response (same correlation-id) is this session's answer."""
        parsed = thing_command(envelope)
        if isinstance(parsed, RetrieveThings):
            raise ProtocolMessageUnsupported(
                "Retrieving several Things is not supported on the live channel."
            )
        cmd = parsed
        enforcer = await self.ctx.dispatcher.visible_thing_enforcer(cmd.thing_id)
        if cmd.action == "retrieve":
            guard.authorize_retrieve(enforcer, self.auth.subjects, cmd)
        else:
            guard.authorize_write(enforcer, self.auth.subjects, cmd)
        acks = _ack_request(envelope, cmd.headers.timeout_s, "live")
        correlation_id = cmd.headers.correlation_id
        frame_headers = {**_without_correlation(envelope.headers), "correlation-id": correlation_id}
        _set_requested_acks(frame_headers, acks, list(acks.labels))
        frame = replace(envelope, headers=frame_headers)
        wait_s = acks.timeout_s if LIVE_RESPONSE in acks.labels else 0.0
        with self.ctx.acks.pending(correlation_id, acks) as pending:
            reply = await self.ctx.messages.send_live_command(
                cmd.thing_id,
                guard.thing_resource(cmd.path),
                frame.to_json(),
                correlation_id,
                wait_s,
                origin=self,
            )
            if acks.only_implicit:
                if not acks.response_required:
                    return None
                if reply is None:
                    raise CommandTimeout(
                        f"The live command '{cmd.type}' was not answered within its timeout "
                        f"of {acks.timeout_s:g}s."
                    )
                return _live_response(envelope.topic, envelope.path, headers, correlation_id, reply)
            given = {LIVE_RESPONSE: _reply_ack(LIVE_RESPONSE, reply, correlation_id)} if reply else {}
            collected = await pending.collect(given)
        return acks_envelope(envelope.topic.with_criterion("acks"), headers, correlation_id, collected)

    async def _retrieve_things(
        self, envelope: Envelope, cmd: RetrieveThings, headers: dict[str, Any]
    ) -> Envelope:
        views = await self.ctx.dispatcher.retrieve_many(list(cmd.thing_ids), self.auth, cmd.fields)
        return retrieve_things_response(cmd, views, headers)

    async def _message(self, envelope: Envelope, headers: dict[str, Any]) -> Envelope | None:
        """A reply (with ``status``) to a message this session received, or a message the client sends: it
        needs WRITE on the ``message:`` resource and goes to the other sessions that sent
        ``START-SEND-MESSAGES`` and may READ it; the first reply with its correlation-id is the answer."""
        all_headers = {str(k).lower(): _header_as_text(v) for k, v in envelope.headers.items()}
        if envelope.status is not None:
            answer = MessageReply(envelope.status, all_headers, envelope.value)
            self.ctx.messages.reply(all_headers.get("correlation-id", ""), answer)
            return None
        topic = envelope.topic
        thing_id = f"{topic.namespace}:{topic.name}"
        target = message_target(parse_pointer(envelope.path))
        if target is None:
            raise MessageSubjectInvalid(f"The path '{envelope.path}' does not address a Message.")
        feature_id, direction, subject = target
        if not subject:
            raise MessageSubjectInvalid("The Message subject must not be empty.")
        if envelope.value is not MISSING and len(orjson.dumps(envelope.value)) > MAX_PAYLOAD_BYTES:
            raise MessagePayloadTooLarge()
        claim = subject == "claim" and direction == "inbox" and feature_id is None
        maximum = CLAIM_MAX_TIMEOUT_S if claim else MAX_TIMEOUT_S
        timeout_s = (
            parse_timeout(all_headers["timeout"], maximum=maximum)
            if "timeout" in all_headers
            else (CLAIM_DEFAULT_TIMEOUT_S if claim else DEFAULT_TIMEOUT_S)
        )
        acks = _ack_request(envelope, timeout_s, "live")
        correlation_id = all_headers.get("correlation-id") or new_correlation_id()
        all_headers["correlation-id"] = correlation_id
        _set_requested_acks(all_headers, acks, orjson.dumps(list(acks.labels)).decode())
        all_headers.setdefault("thing-id", thing_id)
        all_headers.setdefault("subject", subject)
        all_headers.setdefault("direction", "TO" if direction == "inbox" else "FROM")
        if feature_id is not None:
            all_headers.setdefault("feature-id", feature_id)
        message = ThingMessage(thing_id, direction, subject, feature_id, all_headers, envelope.value)
        wait_s = timeout_s if LIVE_RESPONSE in acks.labels else 0.0
        with self.ctx.acks.pending(correlation_id, acks) as pending:
            reply: MessageReply | None = None
            try:
                reply = await self.ctx.messages.send(message, self.auth.subjects, wait_s, origin=self)
            except MessageTimeout:
                if acks.only_implicit:
                    raise
            if acks.only_implicit:
                if reply is None or not acks.response_required:
                    return None
                reply_headers = {**reply.headers, "correlation-id": correlation_id}
                return Envelope(topic, reply_headers, envelope.path, reply.payload, status=reply.status)
            given = {LIVE_RESPONSE: _reply_ack(LIVE_RESPONSE, reply, correlation_id)} if reply else {}
            collected = await pending.collect(given)
        return acks_envelope(topic.with_criterion("acks"), headers, correlation_id, collected)

    async def _live_event(self, envelope: Envelope) -> None:
        """A device announces an event on the live channel: it needs WRITE where the event happened, and goes
        to the ``START-SEND-LIVE-EVENTS`` subscribers who may READ it (the twin is not changed)."""
        topic = envelope.topic
        thing_id = topic.entity_id
        action = topic.action or "modified"
        if action not in ACTIONS:
            raise ProtocolMessageUnsupported(f"The live event action '{action}' is unknown.")
        path = parse_pointer(envelope.path)
        resource = resource_of(path)
        enforcer = await self.ctx.dispatcher.visible_thing_enforcer(thing_id)
        if not enforcer.has_unrestricted(self.auth.subjects, thing_resource(path), (WRITE,)):
            raise resource.not_modifiable(thing_id)
        twin = await self.ctx.store.get("things", thing_id)
        if twin is None or twin.doc is None:
            raise thing_not_found(thing_id)
        revision = envelope.revision if envelope.revision is not None else twin.revision
        event = ThingEvent(
            resource.event_type(action.capitalize()),
            thing_id,
            action,
            path,
            envelope.value,
            revision,
            envelope.timestamp or utc_now(),
        )
        headers = {str(k).lower(): str(v) for k, v in envelope.headers.items()}
        self.ctx.hub.publish(ThingChange(event, twin, None, headers, channel="live", origin=self))

    def offer_live_command(self, frame: dict[str, Any]) -> bool:
        """A live command for this session's client (it sent ``START-SEND-LIVE-COMMANDS``)."""
        try:
            self._outbound.put_nowait(orjson.dumps(frame).decode())
        except asyncio.QueueFull:
            return False
        return True

    def offer_message(self, message: ThingMessage) -> bool:
        """A message for this session's client (it sent ``START-SEND-MESSAGES``)."""
        frame = message_envelope(message)
        try:
            self._outbound.put_nowait(orjson.dumps(frame.to_json()).decode())
        except asyncio.QueueFull:
            return False
        return True

    async def _policy_command(self, cmd: PolicyCommand, headers: dict[str, Any]) -> Envelope | None:
        outcome = await within_timeout(
            self.ctx.policies.handle(cmd, self.auth), cmd.headers.timeout_s, cmd.type
        )
        if not cmd.headers.response_required:
            return None
        return policy_response(cmd, outcome, headers)

    # ------------------------------------------------------------------------------------------ control
    async def _on_control(self, text: str) -> None:
        name, _, query = text.partition("?")
        start = name.startswith("START-SEND-")
        kind = name.removeprefix("START-SEND-" if start else "STOP-SEND-")
        params = dict(parse_qsl(query, keep_blank_values=True))
        if kind not in STREAMS:
            await self._send_error(
                StreamingTypeInvalid(f"The control message '{name}' is unknown."), None, {}
            )
            return
        if kind in self._streams:
            self.ctx.hub.remove(self._streams.pop(kind))
        if kind == "LIVE-COMMANDS":
            self.ctx.messages.remove_live(self)
            if start:
                self.live_namespaces = _namespaces(params)
                self.ctx.messages.add_live(self)
        if kind == "MESSAGES":
            self.ctx.messages.remove(self)
            if start:
                self.namespaces = _namespaces(params)
                self.ctx.messages.add(self)
        if start and kind in ("EVENTS", "LIVE-EVENTS"):
            try:
                channel = "live" if kind == "LIVE-EVENTS" else "twin"
                subscription = _subscription(self, params, channel)
            except DittoError as error:
                await self._send_error(error, None, _correlation(params))
                return
            subscription.on_end = partial(self._stream_ended, subscription)
            self.ctx.hub.add(subscription)
            self._streams[kind] = subscription
        if kind == "POLICY-ANNOUNCEMENTS":
            # subject deletion announcements for this session's own subjects (service/policy_announcements.py)
            self.ctx.announcements.remove(self)
            if start:
                self.ctx.announcements.add(
                    self, self.subjects, _namespaces(params), self._outbound.put_nowait
                )
        await self._send(f"{name}:ACK")

    async def _release_held(self, correlation_id: str) -> None:
        """Send the events held back for a command's response now, and hold no further ones."""
        for frame in self._awaiting_response.pop(correlation_id, []):
            await self._send(frame)

    def _deliver_event(self, delivery: Delivery) -> bool:
        """The hub's sink for this session's event streams: False when the outbound queue is full."""
        frame = delivery.rendered.get("ws")
        if frame is None:  # shared by the sessions that see this event alike: rendered once
            frame = delivery.rendered["ws"] = orjson.dumps(event_envelope(delivery).to_json()).decode()
        correlation_id = delivery.change.headers.get("correlation-id")
        held = self._awaiting_response.get(correlation_id) if correlation_id else None
        if held is not None:
            held.append(frame)
            return True
        try:
            self._outbound.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True

    def _stream_ended(self, subscription: Subscription) -> None:
        """Called by the hub when a stream ends: on overflow the client is told, then the socket closed."""
        if subscription.overflowed and not self._closing:
            task = asyncio.get_running_loop().create_task(self._overflowed(subscription))
            self._commands.add(task)
            task.add_done_callback(self._commands.discard)

    async def _overflowed(self, subscription: Subscription) -> None:
        error = EventsOverflowed(headers={"dropped-events": str(subscription.dropped)})
        await self._send_error(error, None, {"dropped-events": str(subscription.dropped)})
        # Closed by the writer, after the frames queued before it (the error among them) are sent.
        await self._outbound.put(_CloseAfterFlush(CLOSE_OVERFLOW, "events overflowed"))

    # ------------------------------------------------------------------------------------------ frames out
    async def _send(self, frame: str) -> None:
        await self._outbound.put(frame)

    async def _send_error(self, error: DittoError, topic: Topic | None, headers: dict[str, Any]) -> None:
        envelope = error_envelope(error, topic, headers)
        await self._send(orjson.dumps(envelope.to_json()).decode())

    async def _write_frames(self) -> None:
        while True:
            frame = await self._outbound.get()
            if frame is None:
                return
            try:
                if isinstance(frame, _CloseAfterFlush):
                    self._closing = True
                    await self.websocket.close(code=frame.code, reason=frame.reason)
                    return
                await self.websocket.send_text(frame)
            except Exception:  # the client went away: the reader loop ends the session
                self._closing = True
                return


def _echo_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers a response carries back: the correlation-id (generated when the client sent none)."""
    out: dict[str, Any] = {}
    correlation_id = headers.get("correlation-id")
    if correlation_id is not None:
        out["correlation-id"] = str(correlation_id)
    return out


def _wait_s(timeout_s: float) -> float:
    """How long to wait for a command's result: its ``timeout``; a zero timeout wants no answer, but its
    error, if any, is still reported."""
    return timeout_s or DEFAULT_COMMAND_TIMEOUT_S


def _ack_request(envelope: Envelope, timeout_s: float, channel: str) -> AckRequest:
    """The acknowledgements a protocol message requests, with Ditto's defaults. Over the WebSocket
    acknowledgements come with the answer, so asking for them without a response is an error."""
    requested = requested_labels(envelope.header("requested-acks"))
    raw_required = envelope.header("response-required")
    required = (
        None
        if raw_required is None
        else parse_bool("response-required", header_text("response-required", raw_required))
    )
    request = ack_request(requested, channel=channel, response_required=required, timeout_s=timeout_s)
    if request.labels and not request.response_required:
        raise HeaderInvalid(
            "Acknowledgements cannot be requested without a response over the WebSocket.",
            "Remove 'requested-acks' or set 'response-required' to true.",
        )
    return request


def _header_as_text(value: Any) -> str:
    """A protocol header as the text a message carries (JSON for arrays and objects, e.g. ``requested-acks``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


def _set_requested_acks(headers: dict[str, Any], acks: AckRequest, value: Any) -> None:
    """The receivers of a live signal see what it effectively requests (Ditto's defaults applied)."""
    for key in [key for key in headers if key.lower() == "requested-acks"]:
        del headers[key]
    if acks.labels:
        headers["requested-acks"] = value


def _without_correlation(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in headers.items() if key.lower() != "correlation-id"}


def _reply_ack(label: str, reply: MessageReply, correlation_id: str) -> Ack:
    return Ack(label, reply.status, {**reply.headers, "correlation-id": correlation_id}, reply.payload)


def _live_response(
    topic: Topic, path: str, headers: dict[str, Any], correlation_id: str, reply: MessageReply
) -> Envelope:
    """The live response a device sent, as the answer to the session that sent the live command."""
    out = {**_without_correlation(reply.headers), **headers, "correlation-id": correlation_id}
    return Envelope(topic, out, path, reply.payload, status=reply.status)


def acks_envelope(
    topic: Topic, headers: dict[str, Any], correlation_id: str, acks: Mapping[str, Ack]
) -> Envelope:
    """``<ns>/<name>/things/<channel>/acks`` (``protocol-specification-acks``): every requested label's
    acknowledgement as ``{label: {status, payload?, headers}}`` and the combined status."""
    out = {**headers, "correlation-id": correlation_id, "content-type": "application/json"}
    value = {label: ack.to_json() for label, ack in acks.items()}
    return Envelope(topic, out, "/", value, status=combined_status(acks))


def _namespaces(params: Mapping[str, str]) -> frozenset[str] | None:
    text = params.get("namespaces")
    return frozenset(n.strip() for n in text.split(",") if n.strip()) if text else None


def _correlation(params: Mapping[str, str]) -> dict[str, Any]:
    cid = params.get("correlation-id")
    return {"correlation-id": cid} if cid else {}


def _subscription(session: WsSession, params: Mapping[str, str], channel: str) -> Subscription:
    """``namespaces``, ``filter`` and ``extraFields`` of a ``START-SEND-EVENTS`` / ``-LIVE-EVENTS``."""
    return subscription_for(
        session.subjects,
        namespaces=_namespaces(params),
        filter_text=params.get("filter") or None,
        extra_fields_text=params.get("extraFields") or None,
        channel=channel,
        sink=session._deliver_event,
        owner=session,
    )
