"""SSH tunnels of connections (``connectivity-ssh-tunneling``), on asyncssh.

A connection whose ``sshTunnel`` is enabled first connects to the SSH server of ``sshTunnel.uri``
(``ssh://host[:port]``, port 22 by default) with ``credentials`` of type ``plain`` (``username``, ``password``) or
``public-key`` (``username``, ``privateKey`` in PKCS8 PEM; ``publicKey`` is not needed to authenticate), checks
the server's host key against ``knownHosts`` (fingerprints as ``ssh-keygen -l`` prints them: ``MD5:xx:..`` or
``SHA1/SHA224/SHA256/SHA384/SHA512:<base64>``) unless ``validateHost`` is false, and forwards a local loopback
port to the host and port of the connection's URI. The broker client then connects to that local port: the
connection's own URI keeps its scheme, credentials and path, with the tunnel's end as its host. (A TLS broker
behind a tunnel is therefore verified against 127.0.0.1, not its own name.) When the SSH connection drops, it is
opened again on the same local port, with backoff, so that the broker client's own reconnects get through.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ditto_compat.connectivity.clients.base import (
    ClientAdapter,
    ClientStatus,
    ConnectionFailed,
    InboundHandler,
)
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Target

__all__ = ["TunnelSettings", "TunnelledClient", "fingerprints", "tunnel_settings"]

# the ports of the URI schemes a tunnelled connection may have, when its URI names none
_DEFAULT_PORTS: Final = {
    "tcp": 1883,
    "ssl": 8883,
    "amqp": 5672,
    "amqps": 5671,
    "http": 80,
    "https": 443,
}
_HASHES: Final = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
CONNECT_TIMEOUT_S: Final = 10.0
RECONNECT_MIN_S: Final = 1.0
RECONNECT_MAX_S: Final = 30.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TunnelSettings:
    host: str
    port: int
    username: str
    password: str | None
    private_key: str | None
    validate_host: bool
    known_hosts: tuple[str, ...]


def tunnel_settings(connection: Connection) -> TunnelSettings | None:
    """The enabled ``sshTunnel`` of the connection, or None; raises ConnectionFailed for one that cannot work."""
    tunnel = connection.extra.get("sshTunnel")
    if not isinstance(tunnel, Mapping) or tunnel.get("enabled") is not True:
        return None
    uri = urlsplit(str(tunnel.get("uri", "")))
    if uri.scheme.lower() != "ssh" or not uri.hostname:
        raise ConnectionFailed(f"The SSH tunnel URI must be ssh://host[:port]: {tunnel.get('uri')!r}")
    credentials = tunnel.get("credentials")
    if not isinstance(credentials, Mapping) or not isinstance(credentials.get("username"), str):
        raise ConnectionFailed("The SSH tunnel needs credentials with a username.")
    kind = credentials.get("type")
    password = credentials.get("password") if kind == "plain" else None
    private_key = credentials.get("privateKey") if kind == "public-key" else None
    if not isinstance(password, str) and not isinstance(private_key, str):
        raise ConnectionFailed(
            "The SSH tunnel credentials must be 'plain' (password) or 'public-key' (privateKey)."
        )
    known = tunnel.get("knownHosts", [])
    return TunnelSettings(
        host=uri.hostname,
        port=uri.port or 22,
        username=credentials["username"],
        password=password if isinstance(password, str) else None,
        private_key=private_key if isinstance(private_key, str) else None,
        validate_host=tunnel.get("validateHost", True) is not False,
        known_hosts=tuple(str(k) for k in known) if isinstance(known, list) else (),
    )


def fingerprints(public_blob: bytes) -> set[str]:
    """A host key's fingerprints in every hash Ditto accepts, as ``ssh-keygen -l -E <hash>`` prints them."""
    out = {"MD5:" + ":".join(f"{b:02x}" for b in hashlib.md5(public_blob).digest())}
    for name in _HASHES[1:]:
        digest = base64.b64encode(hashlib.new(name, public_blob).digest()).decode().rstrip("=")
        out.add(f"{name.upper()}:{digest}")
    return out


def _broker(connection: Connection) -> tuple[str, int]:
    """The host and port the tunnel forwards to: those of the connection's URI."""
    uri = urlsplit(connection.uri)
    if not uri.hostname:
        raise ConnectionFailed(f"The connection URI has no host: {connection.uri!r}")
    port = uri.port or _DEFAULT_PORTS.get(uri.scheme.lower())
    if port is None:
        raise ConnectionFailed(f"The connection URI names no port: {connection.uri!r}")
    return uri.hostname, port


def _through(connection: Connection, local_port: int) -> Connection:
    """The connection as its client sees it: its URI's host and port are the tunnel's local end."""
    uri = urlsplit(connection.uri)
    userinfo = uri.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{local_port}"
    return replace(connection, uri=urlunsplit((uri.scheme, netloc, uri.path, uri.query, uri.fragment)))


class TunnelledClient:
    """A client adapter behind an SSH tunnel: opens the tunnel, then the inner client through it."""

    def __init__(
        self,
        connection: Connection,
        settings: TunnelSettings,
        make_client: Callable[[Connection], ClientAdapter],
    ) -> None:
        self.connection = connection
        self._settings = settings
        self._make_client = make_client
        self._ssh: Any = None
        self._inner: ClientAdapter | None = None
        self._failure: str | None = None
        self._keeper: asyncio.Task[None] | None = None

    def status(self) -> ClientStatus:
        if self._inner is not None:
            return self._inner.status()
        return ClientStatus("failed", self._failure) if self._failure else ClientStatus("closed")

    async def _open_tunnel(self, local_port: int = 0) -> int:
        """Connect to the SSH server and forward ``local_port`` (0: any free one) to the broker; returns the
        local port."""
        with warnings.catch_warnings():  # asyncssh still names DSA keys, which cryptography deprecates
            warnings.simplefilter("ignore")
            import asyncssh

        settings = self._settings
        known_hosts = settings.known_hosts
        host, port = _broker(self.connection)  # checked before anything is opened

        class _Client(asyncssh.SSHClient):
            def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
                return bool(fingerprints(key.public_data) & set(known_hosts))

        options: dict[str, Any] = {
            "username": settings.username,
            "known_hosts": ([], [], []) if settings.validate_host else None,
            "client_keys": [asyncssh.import_private_key(settings.private_key)]
            if settings.private_key
            else None,
            "password": settings.password,
            "agent_path": None,
            "connect_timeout": CONNECT_TIMEOUT_S,
        }
        try:
            ssh = await asyncssh.connect(settings.host, settings.port, client_factory=_Client, **options)
        except (OSError, asyncssh.Error, ValueError) as error:
            raise self._failed(f"The SSH tunnel to {settings.host}:{settings.port} failed: {error}") from None
        try:
            listener = await ssh.forward_local_port("127.0.0.1", local_port, host, port)
        except (OSError, asyncssh.Error) as error:
            ssh.close()
            raise self._failed(f"The SSH tunnel cannot forward to the broker: {error}") from None
        self._ssh = ssh
        return int(listener.get_port())

    def _failed(self, reason: str) -> ConnectionFailed:
        self._failure = reason
        return ConnectionFailed(reason)

    async def connect(self, handler: InboundHandler) -> None:
        local_port = await self._open_tunnel()
        self._failure = None
        self._inner = self._make_client(_through(self.connection, local_port))
        try:
            await self._inner.connect(handler)
        except BaseException:
            await self.close()
            raise
        self._keeper = asyncio.create_task(self._keep_tunnel(local_port), name="ssh-tunnel")

    async def _keep_tunnel(self, local_port: int) -> None:
        """When the SSH connection drops, open it again on the same local port (with backoff): the broker
        client's own reconnects then find the broker again."""
        delay = RECONNECT_MIN_S
        while True:
            ssh = self._ssh
            if ssh is not None:
                await ssh.wait_closed()
                self._ssh = None
                delay = RECONNECT_MIN_S
            try:
                await self._open_tunnel(local_port)
                self._failure = None
                log.info("SSH tunnel of connection %s open again", self.connection.id)
            except ConnectionFailed as error:
                log.warning(
                    "SSH tunnel of connection %s: %s; retrying in %gs", self.connection.id, error, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def test(self) -> None:
        local_port = await self._open_tunnel()
        try:
            await self._make_client(_through(self.connection, local_port)).test()
        finally:
            await self._close_tunnel()

    async def publish(self, message: ExternalMessage, target: Target) -> None:
        if self._inner is None:
            raise ConnectionFailed("The SSH tunnel is not open.")
        await self._inner.publish(message, target)

    async def close(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.close()
        await self._close_tunnel()

    async def _close_tunnel(self) -> None:
        ssh, self._ssh = self._ssh, None
        if ssh is not None:
            ssh.close()
            await ssh.wait_closed()
