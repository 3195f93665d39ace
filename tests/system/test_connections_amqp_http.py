"""AMQP 0.9.1 and HTTP push connections end to end (Ditto docs ``connectivity-protocol-bindings-amqp091``,
``connectivity-protocol-bindings-http``, ``basic-connections`` "Source reply target", "Target topics and
filtering", ``connectivity-header-mapping``): a real server process, a real RabbitMQ and a local HTTP endpoint,
connections created through the HTTP API.

AMQP: a device command on the source queue changes the twin, the twin event is published to
``exchange/routingKey``, a command carrying ``reply-to`` is answered there with its correlation-id, and a command
the policy refuses is answered with an error, logged, and does not stop the connection.

HTTP push: twin events of the Things a target's filter selects are POSTed to ``/events/{{ thing:id }}`` with the
target's header mapping; an endpoint answering 500 is logged as a publish failure, and the target goes on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from tests.brokers.amqp import RabbitMq
from tests.brokers.http import RecordedRequest, RecordingEndpoint
from tests.live_server import LiveServer
from tests.system.realtime import ALICE, BOB
from tests.system.test_connections_kafka import (
    DEADLINE_S,
    DEVOPS,
    connection_report,
    create_connection,
    wait_until,
)

DITTO_JSON = "application/vnd.eclipse.ditto+json"


# ---------------------------------------------------------------------------------------------------- AMQP


@pytest.fixture
async def channel(rabbitmq: RabbitMq) -> AsyncIterator[AbstractChannel]:
    """The devices' and consumers' side of the broker: declares queues and exchanges, publishes, consumes."""
    connection: AbstractRobustConnection = await aio_pika.connect_robust(rabbitmq.uri())
    try:
        yield await connection.channel()
    finally:
        await connection.close()


def command(thing_id: str, path: str, value: Any) -> bytes:
    namespace, name = thing_id.split(":")
    envelope = {
        "topic": f"{namespace}/{name}/things/twin/commands/modify",
        "headers": {},
        "path": path,
        "value": value,
    }
    return json.dumps(envelope).encode()


async def next_body(queue: AbstractQueue) -> tuple[AbstractIncomingMessage, dict[str, Any]]:
    """The next message on ``queue`` (polled with basic.get until a deadline, so that nothing is left delivered
    to a consumer that went away), acknowledged, with its JSON body."""

    async def fetched() -> AbstractIncomingMessage | None:
        return await queue.get(fail=False, timeout=DEADLINE_S)

    message: AbstractIncomingMessage = await wait_until(fetched, f"a message on {queue.name}")
    await message.ack()
    return message, json.loads(message.body)


async def test_amqp_commands_events_replies_and_refusals(
    server: LiveServer, rabbitmq: RabbitMq, channel: AbstractChannel
) -> None:
    run = uuid.uuid4().hex[:6]
    thing_id, bobs_id = f"org.example:pump-{run}", f"org.example:bobs-pump-{run}"
    source_queue = f"devices-{run}"
    events_exchange = f"twin-events-{run}"
    reply_queue = f"replies-{run}"

    await channel.declare_queue(source_queue, auto_delete=True)
    exchange = await channel.declare_exchange(events_exchange, aio_pika.ExchangeType.DIRECT, auto_delete=True)
    # the test's own queues live as long as its broker connection (a consumer that stops does not delete them)
    events = await channel.declare_queue(f"events-{run}", exclusive=True)
    # the routing key of the target address is the thing id: only this thing's events reach the queue
    await events.bind(exchange, routing_key=thing_id)
    replies = await channel.declare_queue(reply_queue, exclusive=True)
    await replies.bind("amq.direct", routing_key=reply_queue)

    definition = {
        "name": "pumps over RabbitMQ",
        "connectionType": "amqp-091",
        "connectionStatus": "open",
        "uri": rabbitmq.uri(),
        "sources": [
            {
                "addresses": [source_queue],
                "authorizationContext": ["nginx:alice"],
                "headerMapping": {
                    "reply-to": "{{ header:reply-to }}",
                    "correlation-id": "{{ header:correlation-id }}",
                },
                "replyTarget": {
                    "enabled": True,
                    "address": "{{ header:reply-to }}",
                    "headerMapping": {"correlation-id": "{{ header:correlation-id }}"},
                    "expectedResponseTypes": ["response", "error"],
                },
            }
        ],
        "targets": [
            {
                "address": f"{events_exchange}/{{{{ thing:id }}}}",
                "topics": ["_/_/things/twin/events"],
                "authorizationContext": ["nginx:alice"],
            }
        ],
    }
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http,
        httpx.AsyncClient(base_url=server.base_url, headers=BOB, timeout=30) as bob,
    ):
        body = {"features": {"pump": {"properties": {"rpm": 0}}}}
        assert (await http.put(f"/api/2/things/{thing_id}", json=body)).status_code == 201
        # Bob's thing: its default policy grants Bob alone, so the connection's subject (alice) may not write it
        assert (await bob.put(f"/api/2/things/{bobs_id}", json=body)).status_code == 201
        connection_id = await create_connection(http, definition)

        async def publish(body: bytes, **properties: Any) -> None:
            message = aio_pika.Message(body, content_type=DITTO_JSON, **properties)
            await channel.default_exchange.publish(message, routing_key=source_queue)

        # 1. a device command without reply-to changes the twin; its event goes to exchange/thing-id
        await publish(command(thing_id, "/features/pump/properties/rpm", 1200))

        async def rpm(expected: int) -> bool:
            r = await http.get(f"/api/2/things/{thing_id}/features/pump/properties/rpm")
            return r.status_code == 200 and r.json() == expected

        try:
            await wait_until(lambda: rpm(1200), "the device command to reach the twin")
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n{await connection_report(http, connection_id)}") from None
        event_message, event = await next_body(events)
        assert event_message.routing_key == thing_id
        assert event_message.exchange == events_exchange
        assert event["topic"] == f"org.example/pump-{run}/things/twin/events/modified"
        assert event["path"] == "/features/pump/properties/rpm"
        assert event["value"] == 1200

        # 2. with reply-to (exchange/routingKey) the response comes back there, with the same correlation-id
        await publish(
            command(thing_id, "/features/pump/properties/rpm", 1500),
            correlation_id="pump-cmd-2",
            reply_to=f"amq.direct/{reply_queue}",
        )
        reply_message, reply = await next_body(replies)
        assert reply_message.correlation_id == "pump-cmd-2"
        assert reply["topic"] == f"org.example/pump-{run}/things/twin/commands/modify"
        assert reply["status"] == 204
        assert reply["headers"]["correlation-id"] == "pump-cmd-2"
        assert await rpm(1500)
        _, second_event = await next_body(events)
        assert second_event["value"] == 1500

        # 3. a command on Bob's thing is refused by its policy: answered with an error on the reply target (the
        # default exchange, named by an empty exchange name), logged, and the twin stays as it was
        await publish(
            command(bobs_id, "/features/pump/properties/rpm", 9999),
            correlation_id="pump-cmd-3",
            reply_to=f"/{reply_queue}",
        )
        error_message, error = await next_body(replies)
        assert error_message.correlation_id == "pump-cmd-3"
        assert error["topic"] == f"org.example/bobs-pump-{run}/things/twin/errors"
        assert error["status"] in (403, 404)
        assert error["value"]["error"].startswith("things:")

        async def refusal_logged() -> dict[str, Any] | None:
            r = await http.get(f"/api/2/connections/{connection_id}/logs", auth=DEVOPS)
            for entry in r.json()["connectionLogs"]:
                if entry["level"] == "failure" and entry.get("correlationId") == "pump-cmd-3":
                    return dict(entry)
            return None

        entry = await wait_until(refusal_logged, "the refused command in the connection logs")
        assert entry["category"] == "source"
        assert entry["entityId"] == bobs_id
        assert entry["address"] == source_queue
        r = await bob.get(f"/api/2/things/{bobs_id}/features/pump/properties/rpm")
        assert r.json() == 0

        # 4. the connection keeps working after the refusal
        await publish(command(thing_id, "/features/pump/properties/rpm", 1800))
        await wait_until(lambda: rpm(1800), "a later device command to reach the twin")
        _, third_event = await next_body(events)
        assert third_event["value"] == 1800
        status = (await http.get(f"/api/2/connections/{connection_id}/status", auth=DEVOPS)).json()
        assert status["liveStatus"] == "open"


# ---------------------------------------------------------------------------------------------------- HTTP push


def thing_events(requests: list[RecordedRequest]) -> list[dict[str, Any]]:
    return [json.loads(request.body) for request in requests]


async def test_http_push_filtered_events_header_mapping_and_a_failing_endpoint(
    server: LiveServer, http_endpoint: RecordingEndpoint
) -> None:
    run = uuid.uuid4().hex[:6]
    sensor_id, gateway_id = f"org.example:sensor-{run}", f"org.example:gateway-{run}"
    definition = {
        "name": "twin events to a web hook",
        "connectionType": "http-push",
        "connectionStatus": "open",
        "uri": http_endpoint.uri,
        "specificConfig": {"parallelism": "2"},
        "sources": [],
        "targets": [
            {
                "address": "POST:/events/{{ thing:id }}",
                # a feature event carries no attributes: extraFields adds the one the filter needs
                "topics": [
                    '_/_/things/twin/events?filter=eq(attributes/kind,"sensor")&extraFields=attributes/kind'
                ],
                "authorizationContext": ["nginx:alice"],
                "headerMapping": {
                    "content-type": "application/json",
                    "x-thing-id": "{{ thing:id }}",
                    "x-action": "{{ topic:action }}",
                    "x-feature": "{{ feature:id }}",
                },
            },
            {
                # an endpoint that answers every request with 500
                "address": f"POST:/hooks-{run}/status/500/{{{{ thing:name }}}}",
                "topics": [
                    '_/_/things/twin/events?filter=eq(attributes/kind,"sensor")&extraFields=attributes/kind'
                ],
                "authorizationContext": ["nginx:alice"],
            },
        ],
    }
    sensor_path = f"/events/{sensor_id}"
    failing_path = f"/hooks-{run}/status/500/sensor-{run}"
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        connection_id = await create_connection(http, definition)
        sensor = {"attributes": {"kind": "sensor"}, "features": {"climate": {"properties": {"t": 20.0}}}}
        gateway = {"attributes": {"kind": "gateway"}, "features": {"climate": {"properties": {"t": 20.0}}}}
        # the gateway's events come first: had the filter let them through, they would arrive before the
        # sensor's on the same target
        assert (await http.put(f"/api/2/things/{gateway_id}", json=gateway)).status_code == 201
        r = await http.put(f"/api/2/things/{gateway_id}/features/climate/properties/t", json=21.0)
        assert r.status_code == 204
        assert (await http.put(f"/api/2/things/{sensor_id}", json=sensor)).status_code == 201
        r = await http.put(
            f"/api/2/things/{sensor_id}/features/climate/properties/t",
            json=22.5,
            headers={"correlation-id": f"sensor-t-{run}"},
        )
        assert r.status_code == 204

        try:
            created, modified = await http_endpoint.wait_for(sensor_path, 2, within_s=DEADLINE_S)
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n{await connection_report(http, connection_id)}") from None
        assert http_endpoint.matching(f"/events/{gateway_id}") == []
        assert (created.method, modified.method) == ("POST", "POST")
        first, second = thing_events([created, modified])
        assert first["topic"] == f"org.example/sensor-{run}/things/twin/events/created"
        assert first["value"]["attributes"] == {"kind": "sensor"}
        assert second["topic"] == f"org.example/sensor-{run}/things/twin/events/modified"
        assert second["path"] == "/features/climate/properties/t"
        assert second["value"] == 22.5
        assert second["headers"]["correlation-id"] == f"sensor-t-{run}"
        # header mapping, resolved per event
        assert created.headers["x-thing-id"] == sensor_id
        assert created.headers["x-action"] == "created"
        assert "x-feature" not in created.headers  # unresolvable for a whole-thing event: left out
        assert modified.headers["x-action"] == "modified"
        assert modified.headers["x-feature"] == "climate"
        assert modified.headers["content-type"] == "application/json"

        # the failing endpoint got the same events, answered 500, and each failure was logged
        await http_endpoint.wait_for(failing_path, 2, within_s=DEADLINE_S)

        async def failures_logged() -> list[dict[str, Any]]:
            r = await http.get(f"/api/2/connections/{connection_id}/logs", auth=DEVOPS)
            return [
                entry
                for entry in r.json()["connectionLogs"]
                if entry["level"] == "failure" and entry["type"] == "published"
            ]

        failures = await wait_until(failures_logged, "the failed pushes in the connection logs")
        assert all(entry["category"] == "target" for entry in failures)
        assert {entry["address"] for entry in failures} == {f"POST:{failing_path}"}
        assert any("500" in entry["message"] for entry in failures)
        assert any(entry["entityId"] == sensor_id for entry in failures)

        # both targets go on: a later event reaches the healthy endpoint and is tried at the failing one again
        r = await http.put(f"/api/2/things/{sensor_id}/features/climate/properties/t", json=23.0)
        assert r.status_code == 204
        later = (await http_endpoint.wait_for(sensor_path, 3, within_s=DEADLINE_S))[2]
        assert json.loads(later.body)["value"] == 23.0
        await http_endpoint.wait_for(failing_path, 3, within_s=DEADLINE_S)
        assert http_endpoint.matching(f"/events/{gateway_id}") == []

        # the endpoint recorded the last requests before it answered them: the counts follow a moment later
        async def counted() -> dict[str, Any] | None:
            r = await http.get(f"/api/2/connections/{connection_id}/metrics", auth=DEVOPS)
            published = r.json()["connectionMetrics"]["outbound"]["published"]
            done = published["success"]["PT1H"] >= 3 and published["failure"]["PT1H"] >= 3
            return dict(r.json()) if done else None

        metrics = await wait_until(counted, "three successful and three failed pushes in the metrics")
        assert metrics["containsFailures"] is True


async def test_targets_issue_their_acknowledgement_labels(
    server: LiveServer, http_endpoint: RecordingEndpoint
) -> None:
    """``basic-acknowledgements``: a target's ``issuedAcknowledgementLabel`` is issued once the target published
    the event (200), as a failure when publishing failed, and as a weak acknowledgement when its filter let the
    event out; the HTTP command that requested the labels gets them all without waiting for its timeout."""
    run = uuid.uuid4().hex[:6]
    thing_id = f"org.example:acked-{run}"
    topic = "_/_/things/twin/events"
    definition = {
        "name": "acknowledging web hooks",
        "connectionType": "http-push",
        "connectionStatus": "open",
        "uri": http_endpoint.uri,
        "sources": [],
        "targets": [
            {
                "address": f"POST:/acked-{run}/{{{{ thing:name }}}}",
                "topics": [topic],
                "authorizationContext": ["nginx:alice"],
                "issuedAcknowledgementLabel": "{{connection:id}}:pushed",
            },
            {
                "address": f"POST:/never-{run}",
                "topics": [f"{topic}?filter=eq(attributes/x,-1)"],
                "authorizationContext": ["nginx:alice"],
                "issuedAcknowledgementLabel": "{{connection:id}}:filtered",
            },
            {
                "address": f"POST:/failing-{run}/status/500/x",
                "topics": [topic],
                "authorizationContext": ["nginx:alice"],
                "issuedAcknowledgementLabel": "{{connection:id}}:failing",
            },
        ],
    }
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        connection_id = await create_connection(http, definition)
        pushed, filtered, failing = (f"{connection_id}:{name}" for name in ("pushed", "filtered", "failing"))
        assert (await http.put(f"/api/2/things/{thing_id}", json={"attributes": {"x": 0}})).status_code == 201
        params = {"requested-acks": f"twin-persisted,{pushed},{filtered}", "timeout": "20s"}
        r = await http.put(f"/api/2/things/{thing_id}/attributes/x", json=1, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert {label: body[label]["status"] for label in body} == {
            "twin-persisted": 204,
            pushed: 200,
            filtered: 200,
        }
        assert body[filtered]["headers"]["ditto-weak-ack"] is True
        assert "ditto-weak-ack" not in body[pushed]["headers"]
        assert r.elapsed.total_seconds() < 10  # not the 20 s timeout
        # the acknowledgement came after the push: the endpoint has the event
        (request,) = http_endpoint.matching(f"/acked-{run}/acked-{run}")[-1:]
        assert json.loads(request.body)["value"] == 1
        assert http_endpoint.matching(f"/never-{run}") == []
        # one label: the response carries its status; a failed publish is not a success
        r = await http.put(
            f"/api/2/things/{thing_id}/attributes/x",
            json=2,
            params={"requested-acks": failing, "timeout": "20s"},
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "connectivity:message.sending.failed"  # the payload of the one ack
