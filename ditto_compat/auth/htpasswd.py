"""Users from an nginx/Apache ``htpasswd`` file, as Ditto's shipped nginx authenticates them.

Supported entries: ``$apr1$`` (Apache MD5), bcrypt (``$2y$``/``$2a$``/``$2b$``), ``{SHA}`` (base64 SHA-1) and
``{PLAIN}``. Verified credentials are remembered (by a SHA-256 of the password) so that bcrypt's deliberate
slowness is paid once per user, not once per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import bcrypt

_APR1_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def apr1_hash(password: str, salt: str) -> str:
    """Apache's MD5-based crypt (``htpasswd -m``)."""
    pw = password.encode()
    salt_b = salt.encode()[:8]
    magic = b"$apr1$"
    ctx = hashlib.md5(pw + magic + salt_b)
    alt = hashlib.md5(pw + salt_b + pw).digest()
    for i in range(len(pw), 0, -16):
        ctx.update(alt[: min(16, i)])
    i = len(pw)
    while i:
        ctx.update(b"\x00" if i & 1 else pw[:1])
        i >>= 1
    final = ctx.digest()
    for rnd in range(1000):
        c = hashlib.md5()
        c.update(pw if rnd & 1 else final)
        if rnd % 3:
            c.update(salt_b)
        if rnd % 7:
            c.update(pw)
        c.update(final if rnd & 1 else pw)
        final = c.digest()

    def to64(value: int, count: int) -> str:
        out = ""
        for _ in range(count):
            out += _APR1_ALPHABET[value & 0x3F]
            value >>= 6
        return out

    encoded = ""
    for a, b, d in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        encoded += to64((final[a] << 16) | (final[b] << 8) | final[d], 4)
    encoded += to64(final[11], 2)
    return f"$apr1${salt_b.decode()}${encoded}"


def verify_hash(password: str, stored: str) -> bool:
    if stored.startswith("$apr1$"):
        salt = stored.split("$")[2]
        return hmac.compare_digest(apr1_hash(password, salt), stored)
    if stored.startswith(("$2y$", "$2a$", "$2b$")):
        normalized = "$2b$" + stored[4:]
        try:
            return bcrypt.checkpw(password.encode(), normalized.encode())
        except ValueError:
            return False
    if stored.startswith("{SHA}"):
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        return hmac.compare_digest(digest, stored[5:])
    if stored.startswith("{PLAIN}"):
        return hmac.compare_digest(password, stored[7:])
    return False


class Htpasswd:
    """Username -> hash; :meth:`verify` answers whether the password is right."""

    def __init__(self, entries: dict[str, str]) -> None:
        self._entries = entries
        self._verified: dict[str, bytes] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> Htpasswd:
        entries: dict[str, str] = {}
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#") or ":" not in line:
                continue
            user, stored = line.split(":", 1)
            entries[user] = stored.strip()
        return cls(entries)

    @classmethod
    def single(cls, user: str, password: str) -> Htpasswd:
        return cls({user: "{PLAIN}" + password})

    def verify(self, user: str, password: str) -> bool:
        stored = self._entries.get(user)
        if stored is None:
            return False
        fingerprint = hashlib.sha256(password.encode()).digest()
        known = self._verified.get(user)
        if known is not None and hmac.compare_digest(known, fingerprint):
            return True
        if verify_hash(password, stored):
            self._verified[user] = fingerprint
            return True
        return False
