"""HTTP push client adapter on httpx (Ditto doc ``connectivity-protocol-bindings-http``).

Targets only: a target address is ``VERB:/path`` (``GET``, ``POST``, ``PUT``, ``PATCH``, ``DELETE``); the path,
which may carry a query, is appended to the connection URI (``http(s)://user:password@host:port/base``; the
user info becomes basic authentication). The special headers ``http.path`` and ``http.query`` replace the path
and the query; every other header of the message is sent as an HTTP header. No body is sent for the verbs in
``specificConfig.omitRequestBody`` (default ``GET,DELETE``); at most ``specificConfig.parallelism`` requests
(default 1) are in flight per connection, over one ``httpx.AsyncClient``.

``publish`` returns when the endpoint answered with a 2xx status and raises :class:`HttpPushFailed` (carrying
status, headers and body) otherwise, or :class:`PublishFailed` when the endpoint could not be reached.
``test()`` checks that the endpoint answers HTTP at all (any status). A connection with sources is refused, as
Ditto refuses it.

``credentials``: a client certificate and the server's trust (``clients/tls.py``), an OAuth2 bearer token on every
request (``clients/oauth2.py``), or an HMAC signature of every request (``clients/request_signing.py``).
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from ditto_compat.connectivity.clients.base import ClientStatus, ConnectionFailed, InboundHandler
from ditto_compat.connectivity.clients.errors import HttpPushFailed, PublishFailed
from ditto_compat.connectivity.clients.oauth2 import BearerTokens, TokenUnavailable, oauth2_credentials
from ditto_compat.connectivity.clients.request_signing import RequestSigning, SigningInvalid, request_signing
from ditto_compat.connectivity.clients.specific_config import integer
from ditto_compat.connectivity.clients.status_tracker import StatusTracker
from ditto_compat.connectivity.clients.tls import TlsSettingsInvalid, tls_context
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Target

REQUEST_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Headers httpx computes itself (or that would lie about the body it sends), and the special ones.
_NOT_SENT = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "http.path", "http.query"}
)


class HttpPushClient:
    def __init__(self, connection: Connection, *, oauth2_allow_http: bool = False) -> None:
        """``oauth2_allow_http``: accept a token endpoint that is not https (Ditto's ``enforce-https`` off)."""
        self.connection = connection
        self._status = StatusTracker()
        self._http: httpx.AsyncClient | None = None
        self._base_url = ""
        self._omit_body: frozenset[str] = frozenset()
        self._slots: asyncio.Semaphore | None = None
        self._oauth2_allow_http = oauth2_allow_http
        self._tokens: BearerTokens | None = None
        self._signing: RequestSigning | None = None

    def status(self) -> ClientStatus:
        return self._status.get()

    async def connect(self, handler: InboundHandler) -> None:
        if self.connection.sources:
            raise ConnectionFailed("HTTP push connections do not support sources")
        try:
            self._signing = request_signing(self.connection)
        except SigningInvalid as error:
            self._status.set("failed", str(error))
            raise ConnectionFailed(str(error)) from None
        credentials = oauth2_credentials(self.connection)
        if credentials is not None:
            endpoint = urlsplit(credentials.token_endpoint)
            if endpoint.scheme.lower() != "https" and not self._oauth2_allow_http:
                failure = ConnectionFailed(
                    f"The OAuth2 token endpoint <{credentials.token_endpoint}> is not https; "
                    "start the server with --oauth2-allow-http to allow it."
                )
                self._status.set("failed", str(failure))
                raise failure
            self._tokens = BearerTokens(credentials)
        self._status.set("connecting", f"checking {self._checked_base_url()}")
        try:
            await self.test()
        except ConnectionFailed as exc:
            self._status.set("failed", str(exc))
            raise
        config = self.connection.specific_config
        parallelism = integer(config, "parallelism", 1, 1, 1000)
        omit = str(config.get("omitRequestBody", "GET,DELETE"))
        self._omit_body = frozenset(verb.strip().upper() for verb in omit.split(",") if verb.strip())
        self._slots = asyncio.Semaphore(parallelism)
        self._base_url = self._checked_base_url()
        self._http = self._new_http(max_connections=parallelism)
        self._status.set("open")

    async def test(self) -> None:
        base_url = self._checked_base_url()
        async with self._new_http(max_connections=1) as http:
            try:
                await http.head(base_url or "/", timeout=CONNECT_TIMEOUT_S)
            except httpx.HTTPError as exc:
                raise ConnectionFailed(f"HTTP endpoint {base_url} does not answer: {exc!r}") from exc

    async def publish(self, message: ExternalMessage, target: Target) -> None:
        http, slots = self._http, self._slots
        if http is None or slots is None:
            raise PublishFailed("the HTTP push client is not connected")
        method, url = self._request_line(message)
        headers = {name: value for name, value in message.headers.items() if name.lower() not in _NOT_SENT}
        body = None if method in self._omit_body else message.bytes_payload
        if self._tokens is not None:
            try:
                headers["Authorization"] = await self._tokens.authorization(http)
            except TokenUnavailable as error:
                raise PublishFailed(str(error)) from error
        request = http.build_request(method, url, headers=headers, content=body)
        if self._signing is not None:
            self._signing.sign(request, datetime.now(UTC))
        async with slots:
            try:
                response = await http.send(request)
            except httpx.HTTPError as exc:
                raise PublishFailed(f"{method} {url} failed: {exc!r}") from exc
        if not response.is_success:
            raise HttpPushFailed(
                response.status_code, dict(response.headers), response.content, f"{method} {url}"
            )

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        self._status.set("closed")

    # ------------------------------------------------------------------------------------------ internals
    def _checked_base_url(self) -> str:
        parts = urlsplit(self.connection.uri)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConnectionFailed(
                f"HTTP push URI must be http(s)://host[:port][/path]: {self.connection.uri!r}"
            )
        netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in parts.hostname:  # IPv6 literal
            netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))

    def _new_http(self, *, max_connections: int) -> httpx.AsyncClient:
        parts = urlsplit(self.connection.uri)
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        verify: ssl.SSLContext | bool = False
        if parts.scheme.lower() == "https":
            try:
                verify = tls_context(self.connection)
            except TlsSettingsInvalid as error:
                raise ConnectionFailed(str(error)) from None
        return httpx.AsyncClient(
            auth=auth,
            verify=verify,
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(max_connections=max_connections),
            follow_redirects=False,
        )

    def _request_line(self, message: ExternalMessage) -> tuple[str, str]:
        verb, separator, path = message.address.partition(":")
        method = verb.strip().upper()
        if not separator or method not in METHODS:
            raise PublishFailed(
                f"HTTP target address must be VERB:/path with VERB one of {sorted(METHODS)}: {message.address!r}"
            )
        path, _, query = path.partition("?")
        path = message.header("http.path") or path
        query = message.header("http.query") or query
        if path and not path.startswith("/"):
            path = "/" + path
        return method, self._base_url + path + (f"?{query}" if query else "")
