"""The HTTP push client adapter against a local recording HTTP endpoint (Ditto doc
``connectivity-protocol-bindings-http``): ``VERB:/path`` targets appended to the URI, headers, ``http.path`` /
``http.query``, 2xx as success and anything else as a failure carrying the answer, ``test()``."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Mapping

import pytest

from ditto_compat.connectivity.clients import create_client
from ditto_compat.connectivity.clients.base import ConnectionFailed
from ditto_compat.connectivity.clients.errors import HttpPushFailed, PublishFailed
from ditto_compat.connectivity.clients.http_push import HttpPushClient
from ditto_compat.connectivity.errors import ConnectionTypeUnsupported
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Source, Target
from tests.brokers.http import RecordingEndpoint
from tests.contract.brokers.recording import RecordingHandler
from tests.services import free_port

TARGET = Target(address="unused", topics=(), authorization_context=("ditto:outbound",))


def make_connection(uri: str, specific: Mapping[str, str] | None = None) -> Connection:
    return Connection(
        id=f"http-test-{uuid.uuid4().hex[:8]}",
        connection_type="http-push",
        connection_status="open",
        uri=uri,
        specific_config=dict(specific or {}),
    )


@pytest.fixture
async def client(http_endpoint: RecordingEndpoint) -> AsyncIterator[HttpPushClient]:
    adapter = HttpPushClient(
        make_connection(http_endpoint.uri.replace("http://", "http://user:p%40ss@") + "/base")
    )
    await adapter.connect(RecordingHandler())
    yield adapter
    await adapter.close()


def prefix() -> str:
    return f"/base/{uuid.uuid4().hex[:8]}"


async def test_pushes_to_verb_and_path_with_headers(
    client: HttpPushClient, http_endpoint: RecordingEndpoint
) -> None:
    assert client.status().state == "open"
    where = prefix()
    message = ExternalMessage(
        headers={"content-type": "application/json", "x-thing": "org.example:t1"},
        text='{"a":1}',
        address=f"PUT:{where.removeprefix('/base')}/things/org.example:t1?x=1",
    )
    await client.publish(message, TARGET)

    (request,) = await http_endpoint.wait_for(where)
    assert request.method == "PUT"
    assert request.path == f"{where}/things/org.example:t1"
    assert request.query == "x=1"
    assert request.body == b'{"a":1}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-thing"] == "org.example:t1"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()


async def test_special_headers_replace_path_and_query(
    client: HttpPushClient, http_endpoint: RecordingEndpoint
) -> None:
    where = prefix()
    message = ExternalMessage(
        headers={"http.path": f"{where.removeprefix('/base')}/replaced", "http.query": "a=b&c=d"},
        text="x",
        address="POST:/original?q=1",
    )
    await client.publish(message, TARGET)
    (request,) = await http_endpoint.wait_for(where)
    assert (request.method, request.path, request.query) == ("POST", f"{where}/replaced", "a=b&c=d")
    assert "http.path" not in request.headers and "http.query" not in request.headers


async def test_get_and_delete_send_no_body(client: HttpPushClient, http_endpoint: RecordingEndpoint) -> None:
    where = prefix()
    for verb in ("GET", "DELETE", "PATCH"):
        await client.publish(
            ExternalMessage(text="payload", address=f"{verb}:{where.removeprefix('/base')}"), TARGET
        )
    requests = await http_endpoint.wait_for(where, 3)
    assert [(r.method, r.body) for r in requests] == [("GET", b""), ("DELETE", b""), ("PATCH", b"payload")]


async def test_non_2xx_raises_with_the_answer(
    client: HttpPushClient, http_endpoint: RecordingEndpoint
) -> None:
    with pytest.raises(HttpPushFailed) as failure:
        await client.publish(ExternalMessage(text="x", address="POST:/status/503/down"), TARGET)
    assert failure.value.status == 503
    assert failure.value.body == b"status 503"
    assert failure.value.headers["x-endpoint"] == "recording"
    with pytest.raises(HttpPushFailed, match="HTTP 404"):
        await client.publish(ExternalMessage(text="x", address="PUT:/status/404/missing"), TARGET)
    await client.publish(ExternalMessage(text="x", address="POST:/status/201/created"), TARGET)


async def test_bad_address_is_refused(client: HttpPushClient) -> None:
    with pytest.raises(PublishFailed, match="VERB:/path"):
        await client.publish(ExternalMessage(text="x", address="TRACE:/x"), TARGET)
    with pytest.raises(PublishFailed, match="VERB:/path"):
        await client.publish(ExternalMessage(text="x", address="/no-verb"), TARGET)


async def test_parallelism_bounds_requests_in_flight(http_endpoint: RecordingEndpoint) -> None:
    adapter = HttpPushClient(make_connection(http_endpoint.uri, {"parallelism": "3"}))
    await adapter.connect(RecordingHandler())
    try:
        where = prefix()
        await asyncio.gather(
            *(
                adapter.publish(ExternalMessage(text=str(i), address=f"POST:{where}/{i}"), TARGET)
                for i in range(20)
            )
        )
        requests = await http_endpoint.wait_for(where, 20)
        assert sorted(int(r.body) for r in requests) == list(range(20))
    finally:
        await adapter.close()


async def test_test_and_connect_fail_for_an_unreachable_endpoint() -> None:
    adapter = HttpPushClient(make_connection(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(ConnectionFailed, match="does not answer"):
        await adapter.test()
    with pytest.raises(ConnectionFailed, match="does not answer"):
        await adapter.connect(RecordingHandler())
    assert adapter.status().state == "failed"
    with pytest.raises(PublishFailed, match="not connected"):
        await adapter.publish(ExternalMessage(text="x", address="POST:/x"), TARGET)


async def test_test_succeeds_whatever_the_status(http_endpoint: RecordingEndpoint) -> None:
    await HttpPushClient(make_connection(http_endpoint.uri + "/status/500")).test()
    with pytest.raises(ConnectionFailed, match="http"):
        await HttpPushClient(make_connection("ftp://127.0.0.1:21")).test()


async def test_sources_are_refused(http_endpoint: RecordingEndpoint) -> None:
    connection = Connection(
        id="http-with-source",
        connection_type="http-push",
        connection_status="open",
        uri=http_endpoint.uri,
        sources=(Source(addresses=("x",), authorization_context=("ditto:a",)),),
    )
    with pytest.raises(ConnectionFailed, match="sources"):
        await HttpPushClient(connection).connect(RecordingHandler())


def test_factory_picks_the_adapter_by_type() -> None:
    from ditto_compat.connectivity.clients.amqp import AmqpClient
    from ditto_compat.connectivity.clients.mqtt import MqttClient

    def of(kind: str) -> Connection:
        return Connection(id="c", connection_type=kind, connection_status="open", uri="tcp://127.0.0.1:1")

    assert isinstance(create_client(of("mqtt")), MqttClient)
    assert isinstance(create_client(of("mqtt-5")), MqttClient)
    assert isinstance(create_client(of("amqp-091")), AmqpClient)
    assert isinstance(create_client(of("http-push")), HttpPushClient)
    with pytest.raises(ConnectionTypeUnsupported):
        create_client(of("hono"))
