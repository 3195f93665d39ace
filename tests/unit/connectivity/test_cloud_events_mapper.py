"""The ``CloudEvents`` mapper (``connectivity-mapping`` "CloudEvents mapper"): the doc's binary and structured
examples, ``data_base64``, what is not a CloudEvent, and the structured events it publishes."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson
import pytest

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.registry import create_mapper
from ditto_compat.errors import DittoError
from ditto_compat.protocol.envelope import Envelope, parse_envelope

# the Ditto Protocol message of the doc's examples
MODIFY: dict[str, Any] = {
    "topic": "my.sensors/sensor01/things/twin/commands/modify",
    "path": "/",
    "value": {
        "thingId": "my.sensors:sensor01",
        "policyId": "my.test:policy",
        "attributes": {"manufacturer": "Well known sensors producer", "serial number": "100"},
        "features": {"measurements": {"properties": {"temperature": 100, "humidity": 0}}},
    },
}
CE_HEADERS = {
    "ce-specversion": "1.0",
    "ce-id": "some-id",
    "ce-type": "some-type",
    "ce-source": "generic-producer",
}
STRUCTURED = {"specversion": "1.0", "id": "3212e", "source": "http:somesite.com", "type": "com.site.com"}


def mapped(headers: dict[str, str], payload: Any) -> list[Envelope]:
    text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    message = ExternalMessage(headers=headers, text=text)
    return create_mapper("CloudEvents", {}, connection_id="c").map_incoming(message)


def refused(headers: dict[str, str], payload: Any) -> DittoError:
    with pytest.raises(DittoError) as caught:
        mapped(headers, payload)
    assert caught.value.error_code == "connectivity:message.mapping.failed"
    assert caught.value.status == 400
    return caught.value


def test_a_binary_cloud_event() -> None:
    [envelope] = mapped({**CE_HEADERS, "content-type": "application/vnd.eclipse.ditto+json"}, MODIFY)
    assert envelope == parse_envelope({**MODIFY, "headers": {}})


def test_a_structured_cloud_event() -> None:
    event = {**STRUCTURED, "data": {**MODIFY, "headers": {"correlation-id": "c-1"}}}
    [envelope] = mapped({"content-type": "application/cloudevents+json"}, event)
    assert envelope.topic.entity_id == "my.sensors:sensor01"
    assert envelope.value == MODIFY["value"]
    assert envelope.correlation_id == "c-1"  # the Ditto Protocol message's own headers


def test_data_base64_carries_the_message_and_wins_over_data() -> None:
    encoded = base64.b64encode(orjson.dumps(MODIFY)).decode()
    event = {**STRUCTURED, "data_base64": encoded, "data": {"topic": "x/y/things/twin/commands/delete"}}
    [envelope] = mapped({"content-type": "application/cloudevents+json"}, event)
    assert envelope.topic.action == "modify"


def test_other_content_types_are_dropped() -> None:
    assert mapped({**CE_HEADERS, "content-type": "application/json"}, MODIFY) == []
    assert mapped(CE_HEADERS, MODIFY) == []


@pytest.mark.parametrize("missing", sorted(CE_HEADERS))
def test_a_binary_event_needs_every_attribute(missing: str) -> None:
    headers = {k: v for k, v in CE_HEADERS.items() if k != missing}
    error = refused({**headers, "content-type": "application/vnd.eclipse.ditto+json"}, MODIFY)
    assert error.description == "This is not a CloudEvent"


@pytest.mark.parametrize(
    "event",
    [
        {k: v for k, v in {**STRUCTURED, "data": MODIFY}.items() if k != "source"},
        {**STRUCTURED},  # no data
        {**STRUCTURED, "data": "not a Ditto Protocol message"},
        {**STRUCTURED, "data": {"topic": "not/a/topic"}},
        {**STRUCTURED, "data_base64": "%%%"},
        {**STRUCTURED, "data_base64": 7},
        "not json",
        ["an", "array"],
    ],
)
def test_what_is_not_a_structured_cloud_event_fails_the_message(event: Any) -> None:
    refused({"content-type": "application/cloudevents+json"}, event)


def test_published_signals_are_structured_cloud_events() -> None:
    envelope = parse_envelope({**MODIFY, "headers": {"correlation-id": "c-2"}})
    mapper = create_mapper("CloudEvents", {}, connection_id="c")
    [message] = mapper.map_outgoing(envelope)
    assert message.headers == {"content-type": "application/cloudevents+json"}
    assert message.text is not None
    event = orjson.loads(message.text)
    assert {k: event[k] for k in ("specversion", "source", "type")} == {
        "specversion": "1.0",
        "source": "org.eclipse.ditto",
        "type": "org.eclipse.ditto.outbound",
    }
    assert uuid.UUID(event["id"]).version == 4
    assert event["data"] == envelope.to_json()
    # what it publishes, it reads back
    assert mapper.map_incoming(message) == [envelope]
    [again] = mapper.map_outgoing(envelope)
    assert orjson.loads(again.text or "")["id"] != event["id"]
