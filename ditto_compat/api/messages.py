"""``POST /api/2/things/{id}[/features/{f}]/(inbox|outbox)/messages/{subject}`` and ``.../inbox/claim``
(``httpapi-messages``): the HTTP side of :mod:`ditto_compat.service.messages`.

The body is the payload, typed by ``Content-Type`` (JSON is parsed, text decoded, anything else carried as
base64 text as the Ditto Protocol carries binary payloads). The answer is the receiver's reply: its status, its
``content-type`` and its payload (a 204 without body), 202 at once with ``timeout=0``, 408 without a reply.
"""

from __future__ import annotations

import base64
import contextlib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.api.context import AppContext
from ditto_compat.api.http import header_or_param, read_body
from ditto_compat.domain.auth import AuthContext
from ditto_compat.errors import JsonInvalid
from ditto_compat.model.headers import parse_timeout
from ditto_compat.model.pointer import MISSING
from ditto_compat.service.messages import (
    CLAIM_DEFAULT_TIMEOUT_S,
    CLAIM_MAX_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    MAX_PAYLOAD_BYTES,
    MAX_TIMEOUT_S,
    MessagePayloadTooLarge,
    MessageReply,
    MessageSubjectInvalid,
    ThingMessage,
)


async def send_message(
    request: Request,
    ctx: AppContext,
    auth: AuthContext,
    thing_id: str,
    target: tuple[str | None, str, str],
    correlation_id: str,
) -> Response:
    feature_id, direction, subject = target
    if not subject:
        raise MessageSubjectInvalid("The Message subject must not be empty.")
    raw = await read_body(request)
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise MessagePayloadTooLarge()
    content_type = request.headers.get("content-type") or "application/octet-stream"
    claim = subject == "claim" and direction == "inbox" and feature_id is None
    timeout_text = header_or_param(request, "timeout")
    maximum = CLAIM_MAX_TIMEOUT_S if claim else MAX_TIMEOUT_S
    timeout_s = (
        parse_timeout(timeout_text, maximum=maximum)
        if timeout_text is not None
        else (CLAIM_DEFAULT_TIMEOUT_S if claim else DEFAULT_TIMEOUT_S)
    )
    headers = {
        "correlation-id": correlation_id,
        "content-type": content_type,
        "thing-id": thing_id,
        "subject": subject,
        "direction": "TO" if direction == "inbox" else "FROM",
        "timeout": f"{timeout_s:g}",
    }
    if feature_id is not None:
        headers["feature-id"] = feature_id
    message = ThingMessage(
        thing_id, direction, subject, feature_id, headers, decode_payload(raw, content_type)
    )
    reply = await ctx.messages.send(message, auth.subjects, timeout_s)
    if reply is None:
        return Response(status_code=202, headers={"correlation-id": correlation_id})
    return reply_response(reply, correlation_id)


def decode_payload(raw: bytes, content_type: str) -> Any:
    if not raw:
        return MISSING
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise JsonInvalid("The Message payload is not valid JSON.") from None
    if media.startswith("text/") or media in ("application/xml", "application/x-www-form-urlencoded"):
        return raw.decode("utf-8", errors="replace")
    return base64.b64encode(raw).decode()


def reply_response(reply: MessageReply, correlation_id: str) -> Response:
    headers = {"correlation-id": correlation_id}
    content_type = reply.headers.get("content-type")
    if reply.status == 204 or reply.payload is MISSING:
        return Response(status_code=reply.status, headers=headers)
    payload = reply.payload
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if isinstance(payload, str) and not (media == "application/json" or media.endswith("+json")):
        body = payload.encode()
        if media and not media.startswith("text/") and media != "application/xml":
            # a binary payload travels base64-encoded in the protocol
            with contextlib.suppress(ValueError):
                body = base64.b64decode(payload, validate=True)
        return Response(
            body, status_code=reply.status, headers=headers, media_type=content_type or "text/plain"
        )
    return Response(
        orjson.dumps(payload),
        status_code=reply.status,
        headers=headers,
        media_type=content_type or "application/json",
    )
