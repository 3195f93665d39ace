"""HMAC request signing of HTTP push connections (``connectivity-hmac-signing``): ``"credentials": {"type":
"hmac", "algorithm": ..., "parameters": {...}}`` with one of Ditto's three algorithms.

- ``aws4-hmac-sha256``: AWS Signature Version 4 (``region``, ``service``, ``accessKey``, ``secretKey``,
  ``doubleEncode`` (default true; false for S3), ``canonicalHeaders`` (default ``["host"]``) and
  ``xAmzContentSha256`` (``EXCLUDED`` by default, ``INCLUDED`` or ``UNSIGNED``)), as Ditto's
  ``AwsRequestSigning``: the ``x-amz-date`` header is always sent, ``x-amz-content-sha256`` (and signed) unless
  excluded, and the ``Authorization`` parameters are not quoted. Path and query are canonicalised as AWS
  specifies (unreserved characters kept, everything else percent-encoded; path segments twice unless
  ``doubleEncode`` is false).
- ``az-monitor-2016-04-01``: Azure Monitor's Data Collector ``SharedKey`` (``workspaceId``, ``sharedKey`` in
  Base64) over method, content length, content type, ``x-ms-date`` and path.
- ``az-sasl``: an Azure Shared Access Signature (``sharedKeyName``, ``sharedKey`` in Base64, ``endpoint``,
  optional ``ttl``, default 7 days) as ``Authorization: SharedAccessSignature sr=..&sig=..&se=..&skn=..``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, quote, unquote

import httpx

from ditto_compat.connectivity.model import Connection

__all__ = ["ALGORITHMS", "RequestSigning", "SigningInvalid", "request_signing"]

ALGORITHMS: Final = ("aws4-hmac-sha256", "az-monitor-2016-04-01", "az-sasl")
_UNRESERVED: Final = "-._~"
_AWS_ALGORITHM: Final = "AWS4-HMAC-SHA256"
_SASL_DEFAULT_TTL: Final = timedelta(days=7)


class SigningInvalid(ValueError):
    """The ``hmac`` credentials cannot sign (the message says why)."""


class RequestSigning(Protocol):
    def sign(self, request: httpx.Request, now: datetime) -> None:
        """Add the signature (and the headers it covers) to ``request``; ``now`` is timezone-aware UTC."""


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _encode(text: str) -> str:
    return quote(text, safe=_UNRESERVED)


def _base64_key(parameters: Mapping[str, Any], name: str = "sharedKey") -> bytes:
    try:
        return base64.b64decode(str(parameters[name]), validate=True)
    except (binascii.Error, ValueError):
        raise SigningInvalid(f"The HMAC parameter '{name}' is not Base64.") from None


@dataclass(frozen=True, slots=True)
class AwsSigning:
    region: str
    service: str
    access_key: str
    secret_key: str
    double_encode: bool = True
    canonical_headers: tuple[str, ...] = ("host",)
    x_amz_content_sha256: str = "EXCLUDED"

    @property
    def signed_headers(self) -> tuple[str, ...]:
        names = list(self.canonical_headers)
        if self.x_amz_content_sha256 != "EXCLUDED":
            names.append("x-amz-content-sha256")
        return tuple(sorted({name.strip().lower() for name in names if name.strip()}))

    def sign(self, request: httpx.Request, now: datetime) -> None:
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        scope = f"{now:%Y%m%d}/{self.region}/{self.service}/aws4_request"
        payload_hash = (
            "UNSIGNED-PAYLOAD" if self.x_amz_content_sha256 == "UNSIGNED" else _sha256(request.content)
        )
        canonical = self.canonical_request(request, amz_date, payload_hash)
        string_to_sign = "\n".join((_AWS_ALGORITHM, amz_date, scope, _sha256(canonical.encode("utf-8"))))
        key = _hmac(("AWS4" + self.secret_key).encode("utf-8"), f"{now:%Y%m%d}")
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        request.headers["x-amz-date"] = amz_date
        if self.x_amz_content_sha256 != "EXCLUDED":
            request.headers["x-amz-content-sha256"] = payload_hash
        request.headers["authorization"] = (
            f"{_AWS_ALGORITHM} Credential={self.access_key}/{scope}, "
            f"SignedHeaders={';'.join(self.signed_headers)}, Signature={signature}"
        )

    def canonical_request(self, request: httpx.Request, amz_date: str, payload_hash: str) -> str:
        raw_path, _, raw_query = request.url.raw_path.decode("ascii").partition("?")
        lines = [
            request.method,
            self._canonical_path(raw_path or "/"),
            _canonical_query(raw_query),
            "".join(
                self._canonical_header(request, name, amz_date, payload_hash) for name in self.signed_headers
            ),
            ";".join(self.signed_headers),
            payload_hash,
        ]
        return "\n".join(lines)

    def _canonical_path(self, raw_path: str) -> str:
        if not self.double_encode:
            return raw_path
        segments = [_encode(_encode(unquote(segment))) for segment in raw_path.split("/") if segment]
        if not segments:
            return "/"
        return "/" + "/".join(segments) + ("/" if raw_path.endswith("/") else "")

    @staticmethod
    def _canonical_header(request: httpx.Request, name: str, amz_date: str, payload_hash: str) -> str:
        if name == "host":
            value = request.url.host
        elif name == "x-amz-date":
            value = amz_date
        elif name == "x-amz-content-sha256":
            value = payload_hash
        else:
            value = ",".join(" ".join(v.split()) for v in request.headers.get_list(name))
        return f"{name}:{value}\n"


def _canonical_query(raw_query: str) -> str:
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in sorted(pairs))


@dataclass(frozen=True, slots=True)
class AzMonitorSigning:
    workspace_id: str
    shared_key: bytes

    def sign(self, request: httpx.Request, now: datetime) -> None:
        x_ms_date = format_datetime(now, usegmt=True)
        string_to_sign = "\n".join(
            (
                request.method,
                str(len(request.content)),
                request.headers.get("content-type", ""),
                f"x-ms-date:{x_ms_date}",
                request.url.path,
            )
        )
        signature = base64.b64encode(_hmac(self.shared_key, string_to_sign)).decode("ascii")
        request.headers["x-ms-date"] = x_ms_date
        request.headers["authorization"] = f"SharedKey {self.workspace_id}:{signature}"


@dataclass(frozen=True, slots=True)
class AzSaslSigning:
    shared_key_name: str
    shared_key: bytes
    endpoint: str
    ttl: timedelta = _SASL_DEFAULT_TTL

    def token(self, now: datetime) -> str:
        expiry = int((now + self.ttl).timestamp())
        resource = _encode(self.endpoint)
        signature = base64.b64encode(_hmac(self.shared_key, f"{resource}\n{expiry}")).decode("ascii")
        return f"sr={resource}&sig={_encode(signature)}&se={expiry}&skn={self.shared_key_name}"

    def sign(self, request: httpx.Request, now: datetime) -> None:
        request.headers["authorization"] = f"SharedAccessSignature {self.token(now)}"


def _ttl(value: Any) -> timedelta:
    """Ditto's durations: a number with ``ms``, ``s``, ``m``, ``h`` or ``d`` (seconds without a unit)."""
    text = str(value).strip()
    for unit, seconds in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)):
        if text.endswith(unit) and text[: -len(unit)].strip().isdigit():
            return timedelta(seconds=int(text[: -len(unit)]) * seconds)
    if text.isdigit():
        return timedelta(seconds=int(text))
    raise SigningInvalid(f"The HMAC parameter 'ttl' is not a duration: {value!r}.")


def request_signing(connection: Connection) -> RequestSigning | None:
    """The connection's HMAC signing (parameters checked by the definition), or None."""
    credentials = connection.extra.get("credentials")
    if not isinstance(credentials, Mapping) or credentials.get("type") != "hmac":
        return None
    algorithm = credentials.get("algorithm")
    parameters = credentials.get("parameters")
    if not isinstance(parameters, Mapping):
        raise SigningInvalid("The HMAC credentials need their 'parameters'.")
    try:
        if algorithm == "aws4-hmac-sha256":
            headers = parameters.get("canonicalHeaders", ["host"])
            content_sha256 = str(parameters.get("xAmzContentSha256", "EXCLUDED")).upper()
            if content_sha256 not in ("EXCLUDED", "INCLUDED", "UNSIGNED"):
                raise SigningInvalid("'xAmzContentSha256' must be one of 'INCLUDED', 'EXCLUDED', 'UNSIGNED'.")
            return AwsSigning(
                region=str(parameters["region"]),
                service=str(parameters["service"]),
                access_key=str(parameters["accessKey"]),
                secret_key=str(parameters["secretKey"]),
                double_encode=parameters.get("doubleEncode", True) is not False,
                canonical_headers=tuple(str(h) for h in headers) if isinstance(headers, list) else ("host",),
                x_amz_content_sha256=content_sha256,
            )
        if algorithm == "az-monitor-2016-04-01":
            return AzMonitorSigning(str(parameters["workspaceId"]), _base64_key(parameters))
        if algorithm == "az-sasl":
            return AzSaslSigning(
                shared_key_name=str(parameters["sharedKeyName"]),
                shared_key=_base64_key(parameters),
                endpoint=str(parameters.get("endpoint") or connection.uri),
                ttl=_ttl(parameters["ttl"]) if "ttl" in parameters else _SASL_DEFAULT_TTL,
            )
    except KeyError as missing:
        raise SigningInvalid(f"The HMAC parameter {missing} is missing.") from None
    raise SigningInvalid(f"The HMAC algorithm {algorithm!r} is unknown; use one of {list(ALGORITHMS)}.")
