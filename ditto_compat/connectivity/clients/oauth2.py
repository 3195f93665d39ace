"""OAuth2 bearer tokens for HTTP push connections (``connectivity-protocol-bindings-http`` "OAuth2
authentication"), as Ditto's ``AsyncJwtLoader`` gets them.

``credentials`` of type ``oauth-client-credentials`` (RFC 6749 4.4: ``tokenEndpoint``, ``clientId``,
``clientSecret``, ``requestedScopes``, optional ``audience``) or ``oauth-password`` (4.3: also ``username`` and
``password``, ``clientSecret`` optional for a public client). The token is requested with a form-encoded POST
that accepts JSON; the answer must be a 2xx ``application/json`` object whose ``access_token`` is a JSON Web
Token, and the token is used until ``max_clock_skew_s`` (Ditto's ``max-clock-skew``, 60 s) before the ``exp``
of its claims. Every request of the connection carries ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson

from ditto_compat.connectivity.model import Connection

__all__ = ["BearerTokens", "OAuth2Credentials", "TokenUnavailable", "oauth2_credentials"]

TYPES: Final = ("oauth-client-credentials", "oauth-password")
MAX_CLOCK_SKEW_S: Final = 60.0
TOKEN_TIMEOUT_S: Final = 10.0
# httpx's base Auth sends a request as it is
_NO_AUTH: Final = httpx.Auth()


class TokenUnavailable(Exception):
    """No usable token from the token endpoint (the message says why)."""


@dataclass(frozen=True, slots=True)
class OAuth2Credentials:
    grant_type: str  # "client_credentials" or "password"
    token_endpoint: str
    client_id: str
    client_secret: str | None
    scope: str
    audience: str | None = None
    username: str | None = None
    password: str | None = None

    def form(self) -> dict[str, str]:
        fields = {"grant_type": self.grant_type, "client_id": self.client_id}
        for name, value in (
            ("client_secret", self.client_secret),
            ("scope", self.scope),
            ("audience", self.audience),
            ("username", self.username),
            ("password", self.password),
        ):
            if value is not None:
                fields[name] = value
        return fields


def oauth2_credentials(connection: Connection) -> OAuth2Credentials | None:
    """The connection's OAuth2 ``credentials`` (their fields checked by the definition), or None."""
    credentials = connection.extra.get("credentials")
    if not isinstance(credentials, Mapping) or credentials.get("type") not in TYPES:
        return None

    def text(name: str) -> str | None:
        value = credentials.get(name)
        return value if isinstance(value, str) else None

    password_flow = credentials.get("type") == "oauth-password"
    return OAuth2Credentials(
        grant_type="password" if password_flow else "client_credentials",
        token_endpoint=text("tokenEndpoint") or "",
        client_id=text("clientId") or "",
        client_secret=text("clientSecret"),
        scope=text("requestedScopes") or "",
        audience=text("audience"),
        username=text("username") if password_flow else None,
        password=text("password") if password_flow else None,
    )


def _expiry(token: str) -> float:
    """The ``exp`` claim of a JSON Web Token (seconds since the epoch); the signature is the issuer's business,
    as for Ditto, which only reads the token."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenUnavailable("The access token is not a JSON Web Token.")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = orjson.loads(payload)
    except (binascii.Error, ValueError):
        raise TokenUnavailable("The claims of the access token cannot be read.") from None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenUnavailable("The access token has no expiry ('exp').")
    return float(exp)


class BearerTokens:
    """The current token of one connection, fetched again shortly before it expires (one fetch at a time)."""

    def __init__(
        self,
        credentials: OAuth2Credentials,
        *,
        max_clock_skew_s: float = MAX_CLOCK_SKEW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self._skew = max_clock_skew_s
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def authorization(self, http: httpx.AsyncClient) -> str:
        """The ``Authorization`` header value; raises :class:`TokenUnavailable`."""
        async with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, expiry = await self._fetch(http)
                self._renew_at = expiry - self._skew
            return f"Bearer {self._token}"

    async def _fetch(self, http: httpx.AsyncClient) -> tuple[str, float]:
        endpoint = self.credentials.token_endpoint
        try:
            response = await http.post(
                endpoint,
                data=self.credentials.form(),
                headers={"Accept": "application/json"},
                auth=_NO_AUTH,  # the push URI's user and password are not the token endpoint's
                timeout=TOKEN_TIMEOUT_S,
            )
        except httpx.HTTPError as error:
            raise TokenUnavailable(f"Request to token endpoint <{endpoint}> failed: {error!r}") from error
        content_type = response.headers.get("content-type", "")
        if not response.is_success or not content_type.lower().startswith("application/json"):
            raise TokenUnavailable(
                f"Received invalid JSON web token response from <{endpoint}>: status {response.status_code}, "
                f"content type <{content_type}>."
            )
        try:
            body: Any = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise TokenUnavailable(f"The answer of <{endpoint}> has no 'access_token'.")
        return token, _expiry(token)
