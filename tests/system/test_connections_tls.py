"""Connections over TLS (``connectivity-tls-certificates``) against a real Mosquitto that only speaks TLS and
requires a client certificate: the connection's ``ca``, ``validateCertificates`` and ``client-cert``
credentials decide whether it opens, and an open one carries device telemetry into its twin."""

from __future__ import annotations

import hashlib
import json
import ssl
import urllib.parse
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from ditto_compat.connectivity.clients.request_signing import AwsSigning
from tests.brokers.http import RecordingEndpoint
from tests.brokers.mqtt import Mosquitto
from tests.brokers.tls import Certificates
from tests.system.conftest import ServerFactory
from tests.system.realtime import ALICE
from tests.system.test_connections_kafka import DEADLINE_S, DEVOPS, create_connection, wait_until
from tests.system.test_connections_mqtt import modify


def definition(broker: Mosquitto, run: str, **tls: Any) -> dict[str, Any]:
    return {
        "connectionType": "mqtt",
        "connectionStatus": "open",
        "uri": f"ssl://127.0.0.1:{broker.port}",
        "sources": [
            {
                "addresses": [f"tls-{run}/+/telemetry"],
                "authorizationContext": ["nginx:alice"],
                "qos": 1,
            }
        ],
        **tls,
    }


async def live_status(http: httpx.AsyncClient, connection_id: str) -> dict[str, Any]:
    r = await http.get(f"/api/2/connections/{connection_id}/status", auth=DEVOPS)
    status: dict[str, Any] = r.json()
    return status


async def failed(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """Creates the connection, waits for it to fail, and returns the reason."""
    r = await http.post("/api/2/connections", json=body, auth=DEVOPS)
    assert r.status_code == 201, r.text
    connection_id = r.json()["id"]

    async def has_failed() -> Any:
        status = await live_status(http, connection_id)
        return status["clientStatus"][0]["statusDetails"] if status["liveStatus"] == "failed" else None

    reason: str = await wait_until(has_failed, "the connection to fail")
    assert (await http.delete(f"/api/2/connections/{connection_id}", auth=DEVOPS)).status_code == 204
    return reason


def device(broker: Mosquitto, certificates: Certificates) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"device-{uuid.uuid4().hex[:6]}")
    client.tls_set(
        ca_certs=str(certificates.path("ca.crt")),
        certfile=str(certificates.path("client.crt")),
        keyfile=str(certificates.path("client.key")),
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


async def test_client_certificate_ca_and_validation(
    server_factory: ServerFactory, tmp_path: Path, mosquitto_with_tls: tuple[Mosquitto, Certificates]
) -> None:
    broker, certificates = mosquitto_with_tls
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\n")
    server = server_factory(args=["--htpasswd", str(users)])
    run = uuid.uuid4().hex[:6]
    thing_id = f"org.example:tls-{run}"
    credentials = certificates.client_credentials()
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        body = {"features": {"thermostat": {"properties": {"temperature": 19.0}}}}
        assert (await http.put(f"/api/2/things/{thing_id}", json=body)).is_success

        # the broker wants a client certificate
        reason = await failed(http, definition(broker, run, ca=certificates.ca))
        assert "closed the connection before accepting it" in reason
        # the broker's certificate is not signed by the CA the connection trusts
        reason = await failed(
            http, definition(broker, run, ca=certificates.other_ca, credentials=credentials)
        )
        assert "certificate verify failed" in reason
        # a PKCS1/SEC1 key is refused when the connection is defined, as Ditto does
        traditional = certificates.client_credentials("client-sec1.key")
        r = await http.post(
            "/api/2/connections",
            json=definition(broker, run, ca=certificates.ca, credentials=traditional),
            auth=DEVOPS,
        )
        assert r.status_code == 400 and r.json()["error"] == "connectivity:connection.configuration.invalid"
        assert "PKCS8" in r.json()["message"]

        # not validating: any server certificate will do (the client certificate is still needed)
        unchecked = definition(
            broker, run, validateCertificates=False, ca=certificates.other_ca, credentials=credentials
        )
        unchecked_id = await create_connection(http, unchecked)
        assert (await http.delete(f"/api/2/connections/{unchecked_id}", auth=DEVOPS)).status_code == 204

        # the CA and the client certificate: telemetry reaches the twin over mutual TLS
        await create_connection(http, definition(broker, run, ca=certificates.ca, credentials=credentials))
        client = device(broker, certificates)
        try:
            name = thing_id.split(":")[1]
            payload = modify(thing_id, "/features/thermostat/properties/temperature", 23.5)
            client.publish(f"tls-{run}/{name}/telemetry", payload, qos=1).wait_for_publish(DEADLINE_S)

            async def applied() -> bool:
                r = await http.get(f"/api/2/things/{thing_id}/features/thermostat/properties/temperature")
                return bool(r.status_code == 200 and json.loads(r.text) == 23.5)

            await wait_until(applied, "the telemetry to reach the twin over TLS")
        finally:
            client.loop_stop()
            client.disconnect()


async def test_http_push_with_a_client_certificate(
    server_factory: ServerFactory, https_endpoint: tuple[RecordingEndpoint, Certificates]
) -> None:
    """HTTP push to an HTTPS endpoint that requires a client certificate: twin events arrive with the
    connection's ``ca`` and ``client-cert`` credentials; without the certificate it does not open."""
    endpoint, certificates = https_endpoint
    server = server_factory()
    run = uuid.uuid4().hex[:6]
    thing_id = f"org.example:https-{run}"

    async with httpx.AsyncClient(base_url=server.base_url, auth=("ditto", "ditto"), timeout=30) as http:
        # without the client certificate the endpoint hangs up, and the connection does not open
        reason = await failed(http, push_definition(endpoint, f"anonymous-{run}", ca=certificates.ca))
        assert "does not answer" in reason
        mutual = push_definition(
            endpoint, f"mutual-{run}", ca=certificates.ca, credentials=certificates.client_credentials()
        )
        await create_connection(http, mutual)
        assert (await http.put(f"/api/2/things/{thing_id}", json={"attributes": {"tls": True}})).is_success
        [request] = await endpoint.wait_for(f"/mutual-{run}/{thing_id}", within_s=DEADLINE_S)
        assert json.loads(request.body)["topic"].endswith("/things/twin/events/created")
    assert endpoint.matching(f"/anonymous-{run}") == []


def push_definition(endpoint: RecordingEndpoint, path: str, query: str = "", **extra: Any) -> dict[str, Any]:
    """An HTTP push connection posting twin events to ``/<path>/<thing id>[?query]`` of ``endpoint``."""
    return {
        "connectionType": "http-push",
        "connectionStatus": "open",
        "uri": endpoint.uri,
        "targets": [
            {
                "address": f"POST:/{path}/{{{{ thing:id }}}}{query}",
                "topics": ["_/_/things/twin/events"],
                "authorizationContext": ["nginx:ditto"],
            }
        ],
        **extra,
    }


def oauth2_push(endpoint: RecordingEndpoint, path: str, token_path: str) -> dict[str, Any]:
    return push_definition(
        endpoint,
        path,
        credentials={
            "type": "oauth-client-credentials",
            "tokenEndpoint": f"{endpoint.uri}{token_path}",
            "clientId": "ditto-compat",
            "clientSecret": "s3cret&=",
            "requestedScopes": "scope-1 scope-2",
        },
    )


async def test_http_push_with_oauth2_client_credentials(
    server_factory: ServerFactory, tmp_path: Path, http_endpoint: RecordingEndpoint
) -> None:
    """``oauth-client-credentials`` (``connectivity-protocol-bindings-http`` "OAuth2 authentication"): pushes
    carry the bearer token from the token endpoint, fetched once and again when it is about to expire."""
    run = uuid.uuid4().hex[:6]
    strict = server_factory()
    async with httpx.AsyncClient(base_url=strict.base_url, auth=("ditto", "ditto"), timeout=30) as http:
        # as in Ditto, only an https token endpoint by default
        reason = await failed(http, oauth2_push(http_endpoint, f"strict-{run}", f"/oauth2/token/{run}"))
        assert "not https" in reason
    server = server_factory(tmp_path / "allowing", args=["--oauth2-allow-http"])
    long_lived = f"/oauth2/token/{run}-a/3600"
    short_lived = f"/oauth2/token/{run}-b/30"  # within the 60 s of allowed clock skew: fetched for every push
    async with httpx.AsyncClient(base_url=server.base_url, auth=("ditto", "ditto"), timeout=30) as http:
        await create_connection(http, oauth2_push(http_endpoint, f"bearer-{run}", long_lived))
        await create_connection(http, oauth2_push(http_endpoint, f"short-{run}", short_lived))
        # the password flow of a public client (no secret)
        password_flow = oauth2_push(http_endpoint, f"password-{run}", f"/oauth2/token/{run}-p")
        password_flow["credentials"] = {
            "type": "oauth-password",
            "tokenEndpoint": f"{http_endpoint.uri}/oauth2/token/{run}-p",
            "clientId": "public-client",
            "requestedScopes": "scope-1",
            "username": "operator",
            "password": "pass word",
        }
        await create_connection(http, password_flow)
        # a token endpoint that refuses: nothing is pushed, and the log says why
        refusing = await create_connection(http, oauth2_push(http_endpoint, f"refused-{run}", "/status/401"))
        thing_id = f"org.example:oauth2-{run}"
        assert (await http.put(f"/api/2/things/{thing_id}", json={"attributes": {"n": 1}})).is_success
        assert (await http.put(f"/api/2/things/{thing_id}/attributes/n", json=2)).is_success
        pushed = await http_endpoint.wait_for(f"/bearer-{run}/{thing_id}", 2, within_s=DEADLINE_S)
        short = await http_endpoint.wait_for(f"/short-{run}/{thing_id}", 2, within_s=DEADLINE_S)

        async def refusal_logged() -> bool:
            logs = (await http.get(f"/api/2/connections/{refusing}/logs", auth=DEVOPS)).json()
            return any("invalid JSON web token response" in e["message"] for e in logs["connectionLogs"])

        await wait_until(refusal_logged, "the refused token to be logged")
    assert http_endpoint.matching(f"/refused-{run}") == []
    by_password = (await http_endpoint.wait_for(f"/password-{run}/{thing_id}", 2, within_s=DEADLINE_S))[0]
    assert by_password.headers["authorization"].startswith("Bearer ey")
    [password_request] = http_endpoint.matching(f"/oauth2/token/{run}-p")
    assert urllib.parse.parse_qs(password_request.body.decode()) == {
        "grant_type": ["password"],
        "client_id": ["public-client"],
        "scope": ["scope-1"],
        "username": ["operator"],
        "password": ["pass word"],
    }

    [token_request] = http_endpoint.matching(long_lived)
    assert token_request.method == "POST"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_request.headers["accept"] == "application/json"
    assert "authorization" not in token_request.headers
    assert urllib.parse.parse_qs(token_request.body.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["ditto-compat"],
        "client_secret": ["s3cret&="],
        "scope": ["scope-1 scope-2"],
    }
    tokens = {request.headers["authorization"] for request in pushed}
    assert len(tokens) == 1 and next(iter(tokens)).startswith("Bearer ey")
    # the short-lived token is fetched again for the second push
    assert len(http_endpoint.matching(short_lived)) == 2
    assert len({request.headers["authorization"] for request in short}) == 2


async def test_http_push_signed_with_aws_signature_v4(
    server_factory: ServerFactory, http_endpoint: RecordingEndpoint
) -> None:
    """``hmac`` credentials with ``aws4-hmac-sha256`` (``connectivity-hmac-signing``): what arrives carries a
    signature of exactly the request that arrived (recomputed here from the recorded method, path, query, headers
    and body)."""
    run = uuid.uuid4().hex[:6]
    parameters = {
        "region": "eu-central-1",
        "service": "sns",
        "accessKey": "AKIDEXAMPLE",
        "secretKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "canonicalHeaders": ["host", "x-amz-date", "content-type"],
        "xAmzContentSha256": "INCLUDED",
    }
    definition = push_definition(
        http_endpoint,
        f"signed-{run}",
        "?Action=Publish&b=2&a=1",
        credentials={"type": "hmac", "algorithm": "aws4-hmac-sha256", "parameters": parameters},
    )
    server = server_factory()
    async with httpx.AsyncClient(base_url=server.base_url, auth=("ditto", "ditto"), timeout=30) as http:
        await create_connection(http, definition)
        thing_id = f"org.example:signed-{run}"
        assert (await http.put(f"/api/2/things/{thing_id}", json={"attributes": {"a": 1}})).is_success
        [arrived] = await http_endpoint.wait_for(f"/signed-{run}/{thing_id}", within_s=DEADLINE_S)

    sent = arrived.headers
    assert (
        sent["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        and "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date," in sent["authorization"]
    )
    assert sent["x-amz-content-sha256"] == hashlib.sha256(arrived.body).hexdigest()
    now = datetime.strptime(sent["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    replay = httpx.Request(
        arrived.method,
        f"{http_endpoint.uri}{urllib.parse.quote(arrived.path)}?{arrived.query}",
        headers={"content-type": sent["content-type"]},
        content=arrived.body,
    )
    AwsSigning(
        "eu-central-1",
        "sns",
        "AKIDEXAMPLE",
        parameters["secretKey"],
        canonical_headers=("host", "x-amz-date", "content-type"),
        x_amz_content_sha256="INCLUDED",
    ).sign(replay, now)
    assert replay.headers["authorization"] == sent["authorization"]
