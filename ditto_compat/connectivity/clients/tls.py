"""The TLS side of a connection as Ditto defines it (``connectivity-tls-certificates``), for every client that
speaks TLS (MQTT ``ssl://``, Kafka ``ssl://``, HTTP push ``https://``).

- ``validateCertificates`` (default true): verify the server's certificate and that it names the URI's host
  (IP addresses as a SAN of type IP); false accepts any certificate.
- ``ca``: PEM certificates to trust instead of the public CAs, either the CA that signed the server's
  certificate or the server's certificate itself (trusted directly, as Ditto's "direct verification").
- ``credentials`` of type ``client-cert``: the client certificate (``cert``) and its PKCS8 private key (``key``),
  both PEM, that authenticate the connection at the server.

Python's ``ssl`` loads a certificate chain from files only: the PEM texts are written to a private temporary
directory, loaded, and removed at once.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ditto_compat.connectivity.model import Connection

__all__ = ["ClientCertificate", "TlsSettingsInvalid", "client_certificate", "tls_context"]


class TlsSettingsInvalid(ValueError):
    """The certificates of a connection cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    cert: str
    key: str


def client_certificate(connection: Connection) -> ClientCertificate | None:
    """The ``client-cert`` credentials of the connection (checked by the definition), or None."""
    credentials = connection.extra.get("credentials")
    if not isinstance(credentials, Mapping) or credentials.get("type") != "client-cert":
        return None
    cert, key = credentials.get("cert"), credentials.get("key")
    if not isinstance(cert, str) or not isinstance(key, str):
        raise TlsSettingsInvalid("The client certificate needs 'cert' and 'key'.")
    return ClientCertificate(cert, key)


def tls_context(connection: Connection) -> ssl.SSLContext:
    """A client context with the connection's ``validateCertificates``, ``ca`` and client certificate."""
    ca: Any = connection.extra.get("ca")
    trusted = ca if isinstance(ca, str) and ca.strip() else None
    try:
        context = ssl.create_default_context(cadata=trusted) if trusted else ssl.create_default_context()
    except ssl.SSLError as error:
        raise TlsSettingsInvalid(f"The 'ca' certificates cannot be read: {error}") from None
    # a certificate in 'ca' is a trust anchor of its own, even when it is the server's (not a CA's)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if not connection.validate_certificates:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    certificate = client_certificate(connection)
    if certificate is not None:
        _load_client_certificate(context, certificate)
    return context


def _load_client_certificate(context: ssl.SSLContext, certificate: ClientCertificate) -> None:
    with tempfile.TemporaryDirectory(prefix="ditto-client-cert-") as directory:
        cert_path = os.path.join(directory, "cert.pem")
        key_path = os.path.join(directory, "key.pem")
        for path, text in ((cert_path, certificate.cert), (key_path, certificate.key)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as error:
            raise TlsSettingsInvalid(
                f"The client certificate and key cannot be used together: {error.reason or error}"
            ) from None
