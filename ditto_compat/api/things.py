"""``/api/2/things``: the Things HTTP API of Ditto's OpenAPI (``httpapi-concepts``, ``basic-thing``).

One endpoint parses the raw path itself: thing ids contain ``:`` and arrive encoded or not depending on the
client, and every sub-resource below a Thing is a JSON pointer. Each request becomes one
:class:`ThingCommand` for the dispatcher; the outcome becomes Ditto's status, headers and body.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.api.context import AppContext
from ditto_compat.api.history import historical_point, history_service
from ditto_compat.api.http import (
    command_headers,
    correlation_id_of,
    ditto_endpoint,
    fields_param,
    header_or_param,
    json_response,
    path_segments,
    read_body,
    render_outcome,
    request_uri,
    within_timeout,
)
from ditto_compat.api.live import LIVE, channel_of, live_command
from ditto_compat.api.messages import send_message
from ditto_compat.api.sse import message_stream, thing_stream, wants_event_stream
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.things import Outcome, ThingCommand
from ditto_compat.errors import (
    DittoError,
    MediaTypeUnsupported,
    MethodNotAllowed,
    SearchOptionInvalid,
    ThingIdNotSettable,
    ThingNotCreatable,
)
from ditto_compat.errors import (
    HeaderInvalid as OptionInvalid,
)
from ditto_compat.model.headers import DEFAULT_TIMEOUT_S, CommandHeaders
from ditto_compat.model.ids import check_namespace, check_thing_id, generate_thing_id
from ditto_compat.model.jsonio import loads
from ditto_compat.model.pointer import MISSING, Pointer, parse_pointer
from ditto_compat.rql.ast import Query
from ditto_compat.rql.fields import validate_query
from ditto_compat.rql.parser import parse_rql
from ditto_compat.service.acks import (
    AckRequest,
    ack_request,
    aggregate,
    parse_requested_acks,
    persisted_acks,
)
from ditto_compat.service.messages import message_target

PREFIX = "/api/2/things"
MERGE_PATCH = "application/merge-patch+json"
DEFAULT_PAGE = 25
MAX_PAGE = 200
_METHOD_ACTIONS = {"GET": "retrieve", "PUT": "modify", "PATCH": "merge", "DELETE": "delete"}


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def parse_condition(text: str) -> Query:
    query = parse_rql(text)
    validate_query(query)
    return query


def _split_path(request: Request) -> tuple[str | None, Pointer]:
    """``/api/2/things/<id>/<pointer...>``."""
    thing_id, segments = path_segments(request, PREFIX)
    return thing_id, parse_pointer("/".join(segments))


@ditto_endpoint
async def things_endpoint(request: Request) -> Response:
    ctx = _ctx(request)
    correlation_id = correlation_id_of(request)
    auth = ctx.authenticator.authenticate(request.headers, request.query_params)
    thing_id, pointer = _split_path(request)
    if wants_event_stream(request):
        if thing_id is not None and _is_message_path(pointer):
            return message_stream(ctx, auth, thing_id, pointer)
        return await thing_stream(request, ctx, auth, thing_id, pointer)
    if thing_id is None:
        if request.method == "GET":
            return await _list_things(request, ctx, auth, correlation_id)
        if request.method == "POST":
            return await _post_thing(request, ctx, auth, correlation_id)
        raise MethodNotAllowed(f"The method '{request.method}' is not allowed on '/things'.")
    target = message_target(pointer)
    if target is not None:
        if request.method != "POST":
            raise MethodNotAllowed(f"The method '{request.method}' is not allowed on Messages.")
        return await send_message(request, ctx, auth, check_thing_id(thing_id), target, correlation_id)
    action = _METHOD_ACTIONS.get(request.method)
    if action is None:
        raise MethodNotAllowed(f"The method '{request.method}' is not allowed on this resource.")
    check_thing_id(thing_id)
    headers = command_headers(request, correlation_id)
    value: Any = MISSING
    if action in ("modify", "merge"):
        content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if action == "merge" and content_type != MERGE_PATCH:
            raise MediaTypeUnsupported(
                f"The Media-Type <{content_type or 'none'}> is not supported for PATCH requests.",
                f"Use <{MERGE_PATCH}> as Content-Type.",
            )
        value = loads(await read_body(request))
    condition_text = header_or_param(request, "condition")
    condition = parse_condition(condition_text) if condition_text else None
    cmd = ThingCommand(action, thing_id, pointer, value, headers, fields_param(request), condition)
    cmd.resource  # noqa: B018  (validates the path: unknown resources answer 404 before any I/O)
    if channel_of(request) == LIVE:
        answered = await live_command(request, ctx, auth, cmd)
        if answered is not None:
            return answered
    if action != "retrieve":
        return await _change(request, ctx, auth, cmd, request_uri(request))
    point = historical_point(request)
    if point is not None:
        history = history_service(ctx).thing_at(cmd, auth, point)
        outcome = await within_timeout(history, headers.timeout_s, cmd.type)
    else:
        outcome = await _dispatch(ctx, cmd, auth)
    return render_outcome(outcome, headers, correlation_id, request_uri(request))


async def _change(
    request: Request, ctx: AppContext, auth: AuthContext, cmd: ThingCommand, location: str
) -> Response:
    """A modifying command, answered as its requested acknowledgements say."""
    acks = _ack_request(request, cmd.headers)
    if not acks.only_implicit:
        return await _with_acks(ctx, cmd, auth, acks)
    if not acks.response_required and cmd.headers.response_required:  # a zero timeout wants no answer
        cmd = replace(cmd, headers=replace(cmd.headers, response_required=False))
    outcome = await _dispatch(ctx, cmd, auth)
    return render_outcome(outcome, cmd.headers, cmd.headers.correlation_id, location)


def _ack_request(request: Request, headers: CommandHeaders) -> AckRequest:
    """What a change requests (``requested-acks``, ``response-required``, ``timeout``), with Ditto's defaults."""
    explicit_response = header_or_param(request, "response-required") is not None
    return ack_request(
        parse_requested_acks(header_or_param(request, "requested-acks")),
        channel="twin",
        response_required=headers.response_required if explicit_response else None,
        timeout_s=headers.timeout_s,
    )


async def _with_acks(ctx: AppContext, cmd: ThingCommand, auth: AuthContext, request: AckRequest) -> Response:
    """A change that requested acknowledgements besides ``twin-persisted``: answered once all were issued or
    the timeout passed, with Ditto's aggregation (:mod:`ditto_compat.service.acks`); ``response-required=false``
    answers 202 after the acknowledgements."""
    correlation_id = cmd.headers.correlation_id
    with ctx.acks.pending(correlation_id, request) as pending:
        event_headers = {"requested-acks": orjson.dumps(list(request.labels)).decode()}
        outcome = await within_timeout(
            ctx.dispatcher.handle(cmd, auth, event_headers=event_headers), request.timeout_s, cmd.type
        )
        ack_headers = {"correlation-id": correlation_id, **({"etag": outcome.etag} if outcome.etag else {})}
        acks = await pending.collect(
            persisted_acks(request.labels, outcome.status, ack_headers, outcome.value)
        )
    headers = {"correlation-id": correlation_id}
    if not request.response_required:
        return Response(status_code=202, headers=headers)
    if len(acks) == 1:
        (ack,) = acks.values()
        if ack.payload is MISSING:
            return Response(status_code=ack.status, headers=headers)
        return json_response(ack.status, ack.payload, headers)
    status, body = aggregate(acks)
    return json_response(status, body, headers)


def _is_message_path(pointer: Pointer) -> bool:
    """``[features/<f>/](inbox|outbox)/messages[/...]``: an SSE stream of messages rather than of changes."""
    rest = pointer[2:] if len(pointer) >= 2 and pointer[0] == "features" else pointer
    return len(rest) >= 2 and rest[0] in ("inbox", "outbox") and rest[1] == "messages"


async def _dispatch(ctx: AppContext, cmd: ThingCommand, auth: AuthContext) -> Outcome:
    # a zero timeout wants no answer, but the 202 still waits for the commit (persist before acknowledge)
    timeout_s = cmd.headers.timeout_s or DEFAULT_TIMEOUT_S
    return await within_timeout(ctx.dispatcher.handle(cmd, auth), timeout_s, cmd.type)


async def _post_thing(request: Request, ctx: AppContext, auth: AuthContext, correlation_id: str) -> Response:
    """``POST /things``: a new Thing with a generated id in ``namespace`` (or the default namespace)."""
    if (header_or_param(request, "channel") or "twin").lower() == "live":
        raise ThingNotCreatable("A Thing cannot be created on the live channel.")
    namespace = request.query_params.get("namespace")
    if namespace is not None:
        check_namespace(namespace)
    raw = await read_body(request)
    body = loads(raw) if raw.strip() else {}
    if isinstance(body, dict) and "thingId" in body:
        raise ThingIdNotSettable(
            "It is not allowed to provide a Thing ID in the request body for method POST.",
            "To provide a Thing ID, use the method PUT instead of POST.",
        )
    thing_id = generate_thing_id(namespace)
    headers = command_headers(request, correlation_id)
    cmd = ThingCommand("create", thing_id, (), body, headers)
    return await _change(request, ctx, auth, cmd, f"{request_uri(request).rstrip('/')}/{thing_id}")


async def _list_things(request: Request, ctx: AppContext, auth: AuthContext, correlation_id: str) -> Response:
    fields = fields_param(request)
    headers = {"correlation-id": correlation_id}
    ids_param = request.query_params.get("ids")
    if ids_param is not None:
        ids = [check_thing_id(t.strip()) for t in ids_param.split(",") if t.strip()]
        if not ids:
            raise OptionInvalid(
                "The query parameter 'ids' must not be empty.", "Provide a comma-separated list of Thing IDs."
            )
        return json_response(200, await ctx.dispatcher.retrieve_many(ids, auth, fields), headers)
    size, after = _page_option(request.query_params.get("option"))
    namespaces_param = request.query_params.get("namespaces")
    namespaces = [n.strip() for n in namespaces_param.split(",") if n.strip()] if namespaces_param else None
    views, last = await ctx.dispatcher.list_visible(
        auth, after=after, size=size, namespaces=namespaces, fields=fields
    )
    if last is not None:
        cursor = base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")
        next_url = request.url.include_query_params(option=f"size({size}),cursor({cursor})")
        headers["link"] = f'<{next_url}>; rel="next"'
    return json_response(200, views, headers)


def _page_option(option: str | None) -> tuple[int, str | None]:
    """``size(n)`` and ``cursor(c)`` of the ``option`` parameter of ``GET /things``."""
    size = DEFAULT_PAGE
    after: str | None = None
    if not option:
        return size, after
    for part in _split_options(option):
        name, _, rest = part.partition("(")
        arg = rest[:-1] if rest.endswith(")") else None
        if name == "size" and arg is not None and arg.isdigit() and 0 < int(arg) <= MAX_PAGE:
            size = int(arg)
        elif name == "cursor" and arg:
            try:
                after = base64.urlsafe_b64decode(arg + "=" * (-len(arg) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise _option_invalid(option) from None
        else:
            raise _option_invalid(option)
    return size, after


def _split_options(option: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(option):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(option[start:i].strip())
            start = i + 1
    parts.append(option[start:].strip())
    return [p for p in parts if p]


def _option_invalid(option: str) -> DittoError:
    return SearchOptionInvalid(
        f"The option '{option}' is not valid.",
        f"Use 'size(n)' with 0 < n <= {MAX_PAGE} and the 'cursor(...)' of a previous page's Link header.",
    )
