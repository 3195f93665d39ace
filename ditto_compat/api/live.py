"""``channel=live`` on Thing commands over HTTP (``protocol-twinlive``, inventory §5).

The command is authorized against the twin's policy exactly as on the twin channel (READ to retrieve,
WRITE to change), then offered to the WebSocket sessions subscribed to live commands; the first live response
is the HTTP answer (its status and value). ``live-channel-condition`` (RQL on the twin, as the caller may read
it) decides per request: a twin that does not match answers from the twin. Without a live response within
``timeout``: 408, or with ``live-channel-timeout-strategy: use-twin`` the twin's answer.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.api.context import AppContext
from ditto_compat.api.http import header_or_param, json_response
from ditto_compat.domain import thing_enforcement as guard
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.things import ThingCommand
from ditto_compat.errors import CommandTimeout, HeaderInvalid
from ditto_compat.model.pointer import MISSING, format_pointer
from ditto_compat.protocol.envelope import Envelope
from ditto_compat.protocol.things import thing_topic
from ditto_compat.rql.evaluator import evaluate
from ditto_compat.rql.fields import searchable_document, validate_query
from ditto_compat.rql.parser import parse_rql

TWIN = "twin"
LIVE = "live"


def channel_of(request: Request) -> str:
    channel = (header_or_param(request, "channel") or TWIN).strip().lower()
    if channel not in (TWIN, LIVE):
        raise HeaderInvalid(
            f"The value '{channel}' of the header 'channel' is invalid.", "Use 'twin' or 'live'."
        )
    return channel


async def live_command(
    request: Request, ctx: AppContext, auth: AuthContext, cmd: ThingCommand
) -> Response | None:
    """The live answer to ``cmd``; None when the twin is to answer instead."""
    state = await ctx.store.get("things", cmd.thing_id)
    enforcer = await ctx.dispatcher.visible_thing_enforcer(cmd.thing_id)
    if cmd.action == "retrieve":
        guard.authorize_retrieve(enforcer, auth.subjects, cmd)
    else:
        guard.authorize_write(enforcer, auth.subjects, cmd)
    condition_text = header_or_param(request, "live-channel-condition")
    if condition_text and state is not None and state.doc is not None:
        condition = parse_rql(condition_text)
        validate_query(condition)
        readable = guard.thing_view(enforcer, auth.subjects, cmd.thing_id, state.doc)
        document = searchable_document(readable, cmd.thing_id, state.revision, state.created, state.modified)
        if not evaluate(condition, document):
            return None
    strategy = (header_or_param(request, "live-channel-timeout-strategy") or "fail").strip().lower()
    if strategy not in ("fail", "use-twin"):
        raise HeaderInvalid(
            f"The value '{strategy}' of the header 'live-channel-timeout-strategy' is invalid.",
            "Use 'fail' or 'use-twin'.",
        )
    correlation_id = cmd.headers.correlation_id
    headers: dict[str, Any] = {"correlation-id": correlation_id, "channel": LIVE}
    frame = Envelope(
        thing_topic(cmd.thing_id, LIVE, "commands", cmd.action),
        headers,
        format_pointer(cmd.path) or "/",
        cmd.value,
    ).to_json()
    reply = await ctx.messages.send_live_command(
        cmd.thing_id, guard.thing_resource(cmd.path), frame, correlation_id, cmd.headers.timeout_s
    )
    if reply is None:
        if strategy == "use-twin":
            return None
        raise CommandTimeout(
            f"The live command '{cmd.type}' was not answered within its timeout of {cmd.headers.timeout_s:g}s."
        )
    response_headers = {"correlation-id": correlation_id, "channel": LIVE}
    if reply.payload is MISSING or reply.status == 204:
        return Response(status_code=reply.status, headers=response_headers)
    return json_response(reply.status, reply.payload, response_headers)
