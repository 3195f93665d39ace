"""Request authentication as Ditto does it behind its nginx (``basic-auth``, ``operating-authentication``).

HTTP Basic against the htpasswd users gives the subject ``nginx:<user>``; with pre-authentication enabled a
proxy may instead name the subjects in ``x-ditto-pre-authenticated`` (header or query parameter,
comma-separated, the first being the default subject).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from ditto_compat.auth.htpasswd import Htpasswd
from ditto_compat.domain.auth import AuthContext
from ditto_compat.errors import AuthenticationFailed

PRE_AUTH_HEADER = "x-ditto-pre-authenticated"
WWW_AUTHENTICATE = 'Basic realm="DITTO"'


def _failed(message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, headers={"www-authenticate": WWW_AUTHENTICATE})


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if ":" not in decoded:
        return None
    user, password = decoded.split(":", 1)
    return user, password


class Authenticator:
    def __init__(self, users: Htpasswd, *, pre_authenticated: bool, devops: Htpasswd) -> None:
        self._users = users
        self._pre_authenticated = pre_authenticated
        self._devops = devops

    def authenticate(self, headers: Mapping[str, str], query: Mapping[str, str]) -> AuthContext:
        """``headers`` with lower-case names."""
        if self._pre_authenticated:
            pre = headers.get(PRE_AUTH_HEADER) or query.get(PRE_AUTH_HEADER)
            if pre:
                subjects = tuple(s.strip() for s in pre.split(",") if s.strip())
                if subjects:
                    return AuthContext(subjects)
        credentials = basic_credentials(headers.get("authorization"))
        if credentials is None:
            raise _failed("Unauthorized.")
        user, password = credentials
        if not self._users.verify(user, password):
            raise _failed("Unauthorized: the credentials were not accepted.")
        return AuthContext((f"nginx:{user}",))

    def authenticate_devops(self, headers: Mapping[str, str]) -> None:
        credentials = basic_credentials(headers.get("authorization"))
        if credentials is None or not self._devops.verify(*credentials):
            raise _failed("Unauthorized: DevOps credentials are required.")
