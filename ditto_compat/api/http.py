"""HTTP plumbing shared by every route: Ditto headers in, Ditto error JSON out (``httpapi-concepts``).

Routes parse a request into a command and render an outcome; nothing here knows about Things.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.domain.things import Outcome
from ditto_compat.errors import (
    CommandTimeout,
    DittoError,
    DuplicateHeaderField,
    InternalError,
    RequestEntityTooLarge,
    UriTooLong,
)
from ditto_compat.model.fields import FieldSelector, parse_fields
from ditto_compat.model.headers import (
    COMMAND_HEADER_NAMES,
    CommandHeaders,
    command_headers_from,
    new_correlation_id,
)
from ditto_compat.model.jsonio import dumps, loads

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BODY_BYTES = 1024 * 1024
MAX_URI_BYTES = 8 * 1024  # gateway.conf max-uri-length
JSON = "application/json"

# gateway.conf "query-params-as-headers": these may come as query parameters as well as headers
QUERY_PARAMS_AS_HEADERS = frozenset(
    {
        "accept",
        "channel",
        "correlation-id",
        "requested-acks",
        "declared-acks",
        "response-required",
        "timeout",
        "live-channel-timeout-strategy",
        "allow-policy-lockout",
        "condition",
        "live-channel-condition",
        "at-historical-revision",
        "at-historical-timestamp",
        "dry-run",
    }
)


def path_segments(request: Request, prefix: str) -> tuple[str | None, list[str]]:
    """``<prefix>/<id>/<segments...>`` from the raw (still percent-encoded) path, each part decoded on its own:
    entity ids arrive encoded or not depending on the client (``:`` as ``%3A`` or literal), and an encoded
    ``/`` inside a key must not split it."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    rest = raw.decode("latin-1").split("?", 1)[0][len(prefix) :]
    if rest in ("", "/"):
        return None, []
    segments = rest[1:].split("/")
    return unquote(segments[0]), [unquote(s) for s in segments[1:]]


def request_uri(request: Request) -> str:
    """The request URI without its query, as the client sent it (still percent-encoded, so it is always a
    valid header value): Ditto's ``Location`` for a ``PUT`` that created something."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return str(request.base_url).rstrip("/") + raw.decode("latin-1").split("?", 1)[0]


def fields_param(request: Request) -> FieldSelector | None:
    """The ``fields`` query parameter as a selector."""
    text = request.query_params.get("fields")
    return parse_fields(text) if text else None


def header_or_param(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    if value is None and name in QUERY_PARAMS_AS_HEADERS:
        value = request.query_params.get(name)
    return value


def correlation_id_of(request: Request) -> str:
    """``x-correlation-id`` wins over ``correlation-id``; a repeated one is a client error."""
    for name in ("x-correlation-id", "correlation-id"):
        values = request.headers.getlist(name)
        if len(values) > 1:
            raise DuplicateHeaderField(
                f"The header '{name}' was sent more than once.", "Send each header field only once."
            )
    value = request.headers.get("x-correlation-id") or header_or_param(request, "correlation-id")
    return value or new_correlation_id()


def command_headers(request: Request, correlation_id: str) -> CommandHeaders:
    """Parse the headers (and header-like query parameters) a command carries."""
    values = {
        name: value
        for name in COMMAND_HEADER_NAMES
        if name != "correlation-id" and (value := header_or_param(request, name)) is not None
    }
    return command_headers_from(values, correlation_id)


async def read_body(request: Request) -> bytes:
    """The request body, refusing more than 1 MiB (Ditto's gateway limit) without reading it all."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestEntityTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> Any:
    return loads(await read_body(request))


def json_response(status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(value), status_code=status, headers=headers, media_type=JSON)


def error_response(error: DittoError, correlation_id: str | None) -> Response:
    headers = dict(error.headers)
    if correlation_id:
        headers["correlation-id"] = correlation_id
    if error.status == 304:
        return Response(status_code=304, headers=headers)
    return json_response(error.status, error.to_json(), headers)


async def within_timeout(command: Awaitable[T], timeout_s: float, command_type: str) -> T:
    """Run a command within its ``timeout``; the command itself is shielded, so a timed-out write still
    completes (Ditto's 408 means "no answer in time", not "not applied")."""
    task = asyncio.ensure_future(command)
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except TimeoutError:
        task.add_done_callback(_consume_result)
        raise CommandTimeout(
            f"The command '{command_type}' could not be processed within its timeout of {timeout_s:g}s."
        ) from None


def _consume_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def render_outcome(outcome: Outcome, headers: CommandHeaders, correlation_id: str, location: str) -> Response:
    """Ditto's answer to a command: 202 without a response, else 201 with body and ``Location``, 200 with body,
    or the bare status; the ``ETag`` whenever there is one."""
    response_headers = {"correlation-id": correlation_id}
    if not headers.response_required:
        return Response(status_code=202, headers=response_headers)
    if outcome.etag:
        response_headers["etag"] = outcome.etag
    if outcome.status == 201:
        response_headers["location"] = location
        return json_response(201, outcome.value, response_headers)
    if outcome.status == 200:
        return json_response(200, outcome.value, response_headers)
    return Response(status_code=outcome.status, headers=response_headers)


Endpoint = Callable[[Request], Awaitable[Response]]


def ditto_endpoint(fn: Endpoint) -> Endpoint:
    """Render every failure as Ditto error JSON: a DittoError as itself, anything else as a logged 500
    without internals, so that no input ever produces a stack trace on the wire."""

    @wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            if (
                len(request.scope.get("raw_path", b"")) + len(request.scope.get("query_string", b""))
                > MAX_URI_BYTES
            ):
                raise UriTooLong(f"The request URI exceeds the maximum of {MAX_URI_BYTES} bytes.")
            return await fn(request)
        except DittoError as error:
            return error_response(
                error, request.headers.get("x-correlation-id") or request.headers.get("correlation-id")
            )
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            return error_response(InternalError(), request.headers.get("correlation-id"))

    return wrapper
