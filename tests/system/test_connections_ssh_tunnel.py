"""Connections through an SSH tunnel (``connectivity-ssh-tunneling``): an SSH server (asyncssh's, on a free
127.0.0.1 port, allowing local port forwarding) between the server and a real Mosquitto. Password and public-key
credentials, host validation by fingerprint, and the refusals."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests import services
from tests.brokers.mqtt import Mosquitto
from tests.system.conftest import ServerFactory
from tests.system.realtime import ALICE
from tests.system.test_connections_kafka import DEADLINE_S, DEVOPS, create_connection, wait_until
from tests.system.test_connections_mqtt import modify

with warnings.catch_warnings():  # asyncssh still names DSA, which cryptography deprecates
    warnings.simplefilter("ignore")
    import asyncssh

USER = "tunnel"
PASSWORD = "tunnel-pw"


@dataclass
class SshServer:
    port: int
    host_key: asyncssh.SSHKey
    client_key: asyncssh.SSHKey
    forwarded: list[tuple[str, int]] = field(default_factory=list)
    connections: list[asyncssh.SSHServerConnection] = field(default_factory=list)


@pytest.fixture
async def ssh_server() -> AsyncIterator[SshServer]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    server = SshServer(services.free_port(), host_key, client_key)

    class Forwarding(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            server.connections.append(conn)

        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == USER and password == PASSWORD

        def connection_requested(
            self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
        ) -> bool:
            server.forwarded.append((dest_host, dest_port))
            return True

    acceptor = await asyncssh.create_server(
        Forwarding,
        services.LOOPBACK,
        server.port,
        server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(client_key.export_public_key().decode()),
    )
    try:
        yield server
    finally:
        acceptor.close()
        await acceptor.wait_closed()


def tunnelled(broker: Mosquitto, ssh: SshServer, run: str, **tunnel: Any) -> dict[str, Any]:
    return {
        "connectionType": "mqtt",
        "connectionStatus": "open",
        "uri": broker.uri,
        "sources": [
            {"addresses": [f"tunnel-{run}/+/telemetry"], "authorizationContext": ["nginx:alice"], "qos": 1}
        ],
        "sshTunnel": {"enabled": True, "uri": f"ssh://127.0.0.1:{ssh.port}", **tunnel},
    }


async def failure_of(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    r = await http.post("/api/2/connections", json=body, auth=DEVOPS)
    assert r.status_code == 201, r.text
    connection_id = r.json()["id"]

    async def failed() -> Any:
        status = (await http.get(f"/api/2/connections/{connection_id}/status", auth=DEVOPS)).json()
        return status["clientStatus"][0]["statusDetails"] if status["liveStatus"] == "failed" else None

    reason: str = await wait_until(failed, "the tunnelled connection to fail")
    assert (await http.delete(f"/api/2/connections/{connection_id}", auth=DEVOPS)).status_code == 204
    return reason


async def test_telemetry_through_an_ssh_tunnel(
    server_factory: ServerFactory, tmp_path: Path, mosquitto: Mosquitto, ssh_server: SshServer
) -> None:
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\n")
    server = server_factory(args=["--htpasswd", str(users)])
    run = uuid.uuid4().hex[:6]
    password = {"type": "plain", "username": USER, "password": PASSWORD}
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        # refused: a host key that is not the known one, a wrong password
        unknown_host = tunnelled(mosquitto, ssh_server, run, credentials=password, knownHosts=["MD5:00:11"])
        assert "not trusted" in await failure_of(http, unknown_host)
        wrong_password = {**password, "password": "nope"}
        assert "SSH tunnel" in await failure_of(
            http, tunnelled(mosquitto, ssh_server, run, credentials=wrong_password)
        )
        assert ssh_server.forwarded == []

        # public-key credentials (PKCS8), the host validated by its SHA256 fingerprint as ssh-keygen prints it
        public_key = {
            "type": "public-key",
            "username": USER,
            "publicKey": ssh_server.client_key.export_public_key("pkcs8-pem").decode(),
            "privateKey": ssh_server.client_key.export_private_key("pkcs8-pem").decode(),
        }
        fingerprint = ssh_server.host_key.get_fingerprint("sha256")
        body = tunnelled(mosquitto, ssh_server, run, credentials=public_key, knownHosts=[fingerprint])
        dry_run = await http.post("/api/2/connections", params={"dry-run": "true"}, json=body, auth=DEVOPS)
        assert dry_run.status_code == 200, dry_run.text
        connection_id = await create_connection(http, body)
        assert (
            ssh_server.forwarded == [("127.0.0.1", mosquitto.port)] * 2
        )  # the dry run's and the connection's

        thing_id = f"org.example:tunnel-{run}"
        thing = {"features": {"thermostat": {"properties": {"temperature": 19.0}}}}
        assert (await http.put(f"/api/2/things/{thing_id}", json=thing)).is_success
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"device-{run}")
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        try:

            async def telemetry_arrives(value: float, what: str) -> None:
                payload = modify(thing_id, "/features/thermostat/properties/temperature", value)
                client.publish(f"tunnel-{run}/device/telemetry", payload, qos=1).wait_for_publish(DEADLINE_S)

                async def applied() -> bool:
                    r = await http.get(f"/api/2/things/{thing_id}/features/thermostat/properties/temperature")
                    return bool(r.status_code == 200 and r.json() == value)

                await wait_until(applied, what)

            await telemetry_arrives(22.0, "the telemetry to arrive through the tunnel")
            # the SSH server drops the tunnel: it is opened again, and telemetry flows again
            for conn in ssh_server.connections:
                conn.close()
            await telemetry_arrives(23.0, "the telemetry to arrive through the reopened tunnel")
            assert len(ssh_server.forwarded) >= 2
        finally:
            client.loop_stop()
            client.disconnect()
        assert (await http.delete(f"/api/2/connections/{connection_id}", auth=DEVOPS)).status_code == 204

        # a password and the MD5 fingerprint do as well
        md5 = ssh_server.host_key.get_fingerprint("md5")
        body = tunnelled(mosquitto, ssh_server, f"{run}-2", credentials=password, knownHosts=["SHA1:x", md5])
        await create_connection(http, body)
