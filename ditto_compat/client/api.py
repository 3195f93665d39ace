"""A small synchronous client of a Ditto-compatible HTTP API v2 (``/api/2/...``) with HTTP Basic auth.

It knows nothing about commands or output: it sends one request, and turns what can go wrong into two
exceptions, :class:`DittoApiError` (the server answered 4xx/5xx) and :class:`ServerUnreachable` (no answer at
all), which the commands map to exit codes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

if TYPE_CHECKING:
    import httpx

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Endpoint:
    """Where to send requests and as whom."""

    url: str
    user: str
    password: str
    timeout: float = 10.0


class DittoApiError(Exception):
    """The server answered with a 4xx or 5xx status; ``body`` is its parsed JSON, or ``None`` if it sent none."""

    def __init__(self, status: int, body: Any, text: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.text = text


class ServerUnreachable(Exception):
    """No HTTP answer: connection refused, unknown host, timeout, TLS failure."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class ApiResponse:
    """A successful answer: status, headers and the JSON body (``None`` for an empty body such as 204)."""

    status: int
    headers: Mapping[str, str]
    body: Any


def entity_path(collection: str, entity_id: str, sub_path: str | None = None) -> str:
    """``/api/2/things/org.acme:s1/features/temperature``: the id is percent-encoded (it may hold ``/`` or
    ``?``), each segment of the sub-path too, so that a key with ``#`` or a space arrives intact."""
    path = f"/api/2/{collection}/{quote(entity_id, safe=':@')}"
    if sub_path:
        segments = [s for s in sub_path.strip("/").split("/") if s]
        path += "".join("/" + quote(s, safe=":@") for s in segments)
    return path


def _parse_json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


class DittoApi:
    """One HTTP connection pool to one server; use it as a context manager."""

    def __init__(self, endpoint: Endpoint) -> None:
        # imported here: ``ditto-compat serve`` registers these commands too and has no use for httpx
        import httpx

        self.endpoint = endpoint
        self._client = httpx.Client(
            base_url=endpoint.url.rstrip("/"),
            auth=(endpoint.user, endpoint.password),
            timeout=endpoint.timeout,
            headers={"accept": JSON},
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        send_body: bool = False,
    ) -> ApiResponse:
        """Send one request; ``send_body`` distinguishes a JSON ``null`` body from no body at all."""
        content: bytes | None = None
        headers: dict[str, str] = {}
        if send_body:
            content = json.dumps(body, ensure_ascii=False).encode()
            headers["content-type"] = content_type
        import httpx

        try:
            response = self._client.request(
                method, path, params=dict(params or {}), content=content, headers=headers
            )
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.endpoint.url, str(exc) or type(exc).__name__) from exc
        parsed = _parse_json(response)
        if response.status_code >= 400:
            raise DittoApiError(response.status_code, parsed, response.text)
        return ApiResponse(response.status_code, response.headers, parsed)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> ApiResponse:
        return self.request("GET", path, params=params)

    def put(self, path: str, body: Any) -> ApiResponse:
        return self.request("PUT", path, body=body, send_body=True)

    def post(self, path: str, body: Any) -> ApiResponse:
        return self.request("POST", path, body=body, send_body=True)

    def patch(self, path: str, body: Any) -> ApiResponse:
        return self.request("PATCH", path, body=body, content_type=MERGE_PATCH, send_body=True)

    def delete(self, path: str) -> ApiResponse:
        return self.request("DELETE", path)
