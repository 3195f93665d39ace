"""Server-Sent Events of Thing changes (``httpapi-sse``, inventory §6).

``GET /api/2/things`` and ``/api/2/things/{id}[/<pointer>]`` with ``Accept: text/event-stream``: each twin event
the caller may READ becomes one ``data:`` line with the *partial Thing* it changed (``{"thingId", <changed
part>}`` through the caller's READ view), or, on a pointer stream, the value at that pointer. Parameters:
``ids``, ``fields`` (projection of the partial Thing; ``_revision``, ``_modified`` and ``_context`` — the
event's ``{topic, path, value, headers}`` — may be selected; an event that projects to nothing is not sent),
``namespaces``, ``filter`` (RQL on the partial Thing with its extra fields) and ``extraFields``.

A comment line is sent as a heartbeat every second when nothing else was, so proxies keep the stream open.

Resuming (an extension: Ditto sends no ``id:`` on Thing streams, only on its search stream, where the id is
the Thing id; this one is built on its historical parameters). On a stream of one Thing every event also
carries ``id: <revision>``; a reconnect with ``Last-Event-ID`` replays the journal after that revision, then
continues live. ``from-historical-revision`` (negative: relative to the current revision, ``0``: the first) /
``from-historical-timestamp`` start the stream earlier, and ``to-historical-revision`` /
``to-historical-timestamp`` end it after the replay. The live subscription is taken before the journal is
read, and live events already replayed are skipped, so nothing falls in between.

A stream of several Things (``GET /api/2/things?ids=a,b``) resumes the same way, per Thing: its id is the
position in every requested Thing, ``<thingId>=<revision>`` joined by ``,`` in Thing id order (ids
percent-encoded but for ``:``; e.g. ``id:org.acme:a=12,org.acme:b=0``), the revision being the last one the
stream has passed for that Thing (0: none yet). The stream opens with an event that carries only that id, which
an EventSource records without firing ``message``, so a client that lost the connection before the first
change still resumes from where it connected. A reconnect with ``Last-Event-ID`` replays from the journal what
each Thing missed, in the order of the events' timestamps, then continues live. A stream without ``ids``
carries no id and does not resume: the journal is kept per Thing with no order across Things, so there is no
position to resume from short of visiting every Thing that changed while the client was away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ditto_compat.api.context import AppContext
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.events import ThingChange, ThingEvent, apply_event
from ditto_compat.errors import HeaderInvalid
from ditto_compat.model.fields import FieldSelector, parse_fields, project
from ditto_compat.model.ids import check_thing_id
from ditto_compat.model.pointer import MISSING, Pointer, format_pointer, get_at
from ditto_compat.protocol.things import thing_event
from ditto_compat.rql.evaluator import compile_query
from ditto_compat.rql.fields import validate_query
from ditto_compat.rql.parser import parse_rql
from ditto_compat.service.hub import DEFAULT_QUEUE_SIZE, Delivery, Subscription, deliver, partial_thing
from ditto_compat.service.messages import ThingMessage

EVENT_STREAM = "text/event-stream"
HEARTBEAT_S = 1.0
HEARTBEAT = b":\n\n"
_CONTEXT = "_context"


def wants_event_stream(request: Request) -> bool:
    return request.method == "GET" and EVENT_STREAM in (request.headers.get("accept") or "")


async def thing_stream(
    request: Request, ctx: AppContext, auth: AuthContext, thing_id: str | None, pointer: Pointer
) -> Response:
    params = request.query_params
    ids: frozenset[str] | None = None
    if thing_id is not None:
        ids = frozenset({check_thing_id(thing_id)})
    elif params.get("ids"):
        ids = frozenset(check_thing_id(t.strip()) for t in params["ids"].split(",") if t.strip())
    namespaces_text = params.get("namespaces")
    namespaces = (
        frozenset(n.strip() for n in namespaces_text.split(",") if n.strip()) if namespaces_text else None
    )
    matches = None
    if params.get("filter"):
        query = parse_rql(params["filter"])
        validate_query(query)
        matches = compile_query(query)
    extra_fields = parse_fields(params["extraFields"]) if params.get("extraFields") else None
    fields = parse_fields(params["fields"]) if params.get("fields") else None
    subscription = Subscription(
        auth.subjects,
        namespaces=namespaces,
        thing_ids=ids,
        matches=matches,
        filter_text=params.get("filter") or None,
        extra_fields=extra_fields,
        queue_size=ctx.settings.event_queue_size,
    )
    replay = _replay_range(request, thing_id) if thing_id is not None else None
    render = _Renderer(fields, pointer, with_id=thing_id is not None)
    cursor: _Cursor | None = None
    if thing_id is None and ids is not None:
        resumed = _Cursor.parse(request.headers.get("last-event-id"), ids)
        # where the Things stand before the subscription is taken: nothing after it is missed on a resume
        fresh = await _current_states(ctx, [t for t in ids if t not in resumed])
        positions = {t: 0 for t in ids} | {t: s.revision for t, s in fresh.items()} | resumed
        cursor = _Cursor(positions, resumed)
    # subscribed before the journal is read: events committed meanwhile are queued, not lost
    ctx.hub.add(subscription)
    try:
        if replay is not None and thing_id is not None:
            history = await _history(ctx, subscription, thing_id, replay)
        elif cursor is not None and cursor.resumed:
            history = await _missed(ctx, subscription, cursor.resumed)
        else:
            history = []
    except BaseException:
        ctx.hub.remove(subscription)
        raise
    stream = _events(ctx, subscription, render, history, replay, cursor)
    return StreamingResponse(
        stream, media_type=EVENT_STREAM, headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
    )


class _Replay:
    def __init__(
        self,
        from_revision: int | None,
        from_timestamp: str | None,
        to_revision: int | None,
        to_timestamp: str | None,
    ) -> None:
        self.from_revision = from_revision
        self.from_timestamp = from_timestamp
        self.to_revision = to_revision
        self.to_timestamp = to_timestamp

    @property
    def ends(self) -> bool:
        return self.to_revision is not None or self.to_timestamp is not None


def _replay_range(request: Request, thing_id: str | None) -> _Replay | None:
    params = request.query_params
    last_event_id = request.headers.get("last-event-id")
    from_revision = _int_param("from-historical-revision", params.get("from-historical-revision"))
    to_revision = _int_param("to-historical-revision", params.get("to-historical-revision"))
    from_timestamp = _timestamp_param("from-historical-timestamp", params.get("from-historical-timestamp"))
    to_timestamp = _timestamp_param("to-historical-timestamp", params.get("to-historical-timestamp"))
    if last_event_id is not None and from_revision is None and from_timestamp is None:
        resumed = _int_param("Last-Event-ID", last_event_id.strip())
        from_revision = None if resumed is None else resumed + 1
    if from_revision is None and from_timestamp is None and to_revision is None and to_timestamp is None:
        return None
    return _Replay(from_revision, from_timestamp, to_revision, to_timestamp)


def _int_param(name: str, text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise HeaderInvalid(
            f"The value '{text}' of '{name}' is not a valid revision.", "Use an integer."
        ) from None


def _timestamp_param(name: str, text: str | None) -> str | None:
    if not text:
        return None
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HeaderInvalid(
            f"The value '{text}' of '{name}' is not a valid timestamp.",
            "Use ISO-8601, e.g. 2026-01-31T12:00:00Z.",
        ) from None
    return text


class _Cursor:
    """The position of a stream of several Things: the last revision it passed per requested Thing."""

    def __init__(self, positions: dict[str, int], resumed: dict[str, int]) -> None:
        self.positions = positions
        self.resumed = resumed  # the positions a Last-Event-ID gave (empty: a new stream)
        self._order = sorted(positions)
        self._keys = {t: quote(t, safe=":") for t in positions}
        self._text: str | None = None

    def advance(self, thing_id: str, revision: int) -> None:
        if thing_id not in self.positions:  # the subscription only passes requested Things; to be safe
            self._order = sorted([*self._order, thing_id])
            self._keys[thing_id] = quote(thing_id, safe=":")
        if revision > self.positions.get(thing_id, 0):
            self.positions[thing_id] = revision
            self._text = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = ",".join(f"{self._keys[t]}={self.positions[t]}" for t in self._order)
        return self._text

    @staticmethod
    def parse(header: str | None, ids: frozenset[str]) -> dict[str, int]:
        """The positions of the requested Things a ``Last-Event-ID`` gives (others are left out)."""
        if header is None or not header.strip():
            return {}
        out: dict[str, int] = {}
        for part in header.strip().split(","):
            key, equals, revision = part.rpartition("=")
            thing_id = unquote(key)
            if not equals or not revision.isdigit():
                raise HeaderInvalid(
                    f"The value '{header}' of 'Last-Event-ID' is not a position of this stream.",
                    "Send the id of the last event received: <thingId>=<revision>, joined by ','.",
                )
            if thing_id in ids:
                out[thing_id] = int(revision)
        return out


async def _current_states(ctx: AppContext, thing_ids: list[str]) -> dict[str, EntityState]:
    """The stored states of the Things, deleted ones (their tombstone revision) included."""
    found = await ctx.store.get_many("things", sorted(thing_ids)) if thing_ids else {}
    for thing_id in thing_ids:
        if thing_id not in found:
            state = await ctx.store.get("things", thing_id)
            if state is not None:
                found[thing_id] = state
    return found


async def _missed(ctx: AppContext, subscription: Subscription, positions: dict[str, int]) -> list[Delivery]:
    """What each Thing's journal holds after its position, as the subscriber may see it now, in the order of
    the events' timestamps (the order the stream would have had)."""
    current = await _current_states(ctx, list(positions))
    out: list[Delivery] = []
    for thing_id, state in sorted(current.items()):
        if state.revision > positions[thing_id]:
            replay = _Replay(positions[thing_id] + 1, None, None, None)
            out += await _history(ctx, subscription, thing_id, replay, state)
    out.sort(key=lambda d: d.change.event.timestamp)  # stable: each Thing's events stay in revision order
    return out


async def _history(
    ctx: AppContext,
    subscription: Subscription,
    thing_id: str,
    replay: _Replay,
    current: EntityState | None = None,
) -> list[Delivery]:
    """The journal's events of one Thing in the range, as the subscriber may see them now."""
    if current is None:
        current = await ctx.store.get("things", thing_id)
    if current is None:
        return []
    start = replay.from_revision if replay.from_revision is not None else 1
    if start <= 0:
        start = max(1, current.revision + start) if start < 0 else 1
    upper = replay.to_revision if replay.to_revision not in (None, 0) else None
    entries = await ctx.store.journal("things", thing_id, from_revision=1, to_revision=upper)
    doc: dict[str, Any] | None = None
    out: list[Delivery] = []
    for entry in entries:
        event = ThingEvent.from_json(entry)
        previous = doc
        doc = apply_event(doc, event)
        if event.revision < start or (replay.from_timestamp and event.timestamp < replay.from_timestamp):
            continue
        if replay.to_timestamp and event.timestamp > replay.to_timestamp:
            break
        governing = doc if doc is not None else previous
        if governing is None:
            continue
        enforcer = await ctx.dispatcher.thing_enforcer(
            EntityState(thing_id, event.revision, governing, "", "")
        )
        if enforcer is None:
            continue
        state = EntityState(thing_id, event.revision, doc, current.created, event.timestamp)
        previous_state = (
            None if previous is None else EntityState(thing_id, event.revision - 1, previous, "", "")
        )
        delivery = deliver(enforcer, subscription, ThingChange(event, state, previous_state, {}))
        if delivery is not None:
            out.append(delivery)
    return out


class _Renderer:
    def __init__(self, fields: FieldSelector | None, pointer: Pointer, *, with_id: bool) -> None:
        self.fields = fields
        self.pointer = pointer
        self.with_id = with_id

    def frame(self, delivery: Delivery, cursor: _Cursor | None = None) -> bytes | None:
        change = delivery.change
        event = change.event
        data: Any = {"thingId": event.thing_id}
        partial = partial_thing(change, delivery.value, None)
        for key, value in partial.items():
            if key in ("attributes", "features", "policyId", "definition"):
                data[key] = value
        if self.pointer:
            data = get_at(data, self.pointer)
            if data is MISSING:
                return None
        elif self.fields is not None:
            source = {**data, **partial, **(delivery.extra or {})}
            if any(f[0] == _CONTEXT for f in self.fields):
                envelope = thing_event(event, dict(change.headers)).to_json()
                source[_CONTEXT] = {
                    k: envelope[k] for k in ("topic", "path", "value", "headers") if k in envelope
                }
            data = project(source, self.fields)
            if not data:
                return None
        lines = f"data:{orjson.dumps(data).decode()}\n"
        if self.with_id:
            lines = f"id:{event.revision}\n" + lines
        elif cursor is not None:
            lines = f"id:{cursor.text}\n" + lines
        return (lines + "\n").encode()


async def _events(
    ctx: AppContext,
    subscription: Subscription,
    render: _Renderer,
    history: list[Delivery],
    replay: _Replay | None,
    cursor: _Cursor | None = None,
) -> AsyncIterator[bytes]:
    try:
        # what the client has: live events up to it are skipped
        last_revision: dict[str, int] = dict(cursor.resumed) if cursor is not None else {}
        if cursor is not None:
            yield f"id:{cursor.text}\n\n".encode()  # the position the stream starts at
        for delivery in history:
            event = delivery.change.event
            last_revision[event.thing_id] = event.revision
            if cursor is not None:
                cursor.advance(event.thing_id, event.revision)
            frame = render.frame(delivery, cursor)
            if frame is not None:
                yield frame
        if replay is not None and replay.ends:
            return
        yield HEARTBEAT  # the stream is open: headers and a first byte reach the client now
        while True:
            try:
                live = await asyncio.wait_for(subscription.next(), HEARTBEAT_S)
            except TimeoutError:
                yield HEARTBEAT
                continue
            if live is None:
                return  # overflowed: ending the stream tells an EventSource to reconnect (and resume)
            event = live.change.event
            if event.revision <= last_revision.get(event.thing_id, 0):
                continue  # already replayed from the journal
            if cursor is not None:
                cursor.advance(event.thing_id, event.revision)
            frame = render.frame(live, cursor)
            if frame is not None:
                yield frame
    finally:
        ctx.hub.remove(subscription)


# ------------------------------------------------------------------------------------------ message streams


class _MessageStream:
    """An SSE stream of one Thing's messages below a path (``.../inbox/messages[/<subject>]``): a receiver of
    :class:`~ditto_compat.service.messages.MessageRouter` with a bounded queue (a full queue refuses)."""

    def __init__(self, subjects: tuple[str, ...], thing_id: str, prefix: str) -> None:
        self._subjects = subjects
        self.thing_id = thing_id
        self.prefix = prefix
        self.queue: asyncio.Queue[ThingMessage] = asyncio.Queue(DEFAULT_QUEUE_SIZE)

    @property
    def subjects(self) -> tuple[str, ...]:
        return self._subjects

    @property
    def namespaces(self) -> frozenset[str] | None:
        return None

    def offer_message(self, message: ThingMessage) -> bool:
        if message.thing_id != self.thing_id or not message.path.startswith(self.prefix):
            return False
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True


def message_stream(ctx: AppContext, auth: AuthContext, thing_id: str, pointer: Pointer) -> Response:
    """``event: <subject>`` and ``data: <payload>`` (text as it is, JSON as JSON text) per message."""
    check_thing_id(thing_id)
    receiver = _MessageStream(auth.subjects, thing_id, format_pointer(pointer))
    ctx.messages.add(receiver)

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield HEARTBEAT
            while True:
                try:
                    message = await asyncio.wait_for(receiver.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield HEARTBEAT
                    continue
                payload = message.payload
                text = (
                    ""
                    if payload is MISSING
                    else payload
                    if isinstance(payload, str)
                    else orjson.dumps(payload).decode()
                )
                data = "".join(f"data:{line}\n" for line in (text.split("\n") if text else [""]))
                yield f"event:{message.subject}\n{data}\n".encode()
        finally:
            ctx.messages.remove(receiver)

    return StreamingResponse(
        frames(), media_type=EVENT_STREAM, headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
    )


def _payload_text(payload: Any) -> str:
    if payload is MISSING:
        return ""
    return payload if isinstance(payload, str) else orjson.dumps(payload).decode()
