"""The built-in payload mappers of ``connectivity-mapping`` (all but JavaScript, which runs V8 and is tested under
tests/contract), both directions, and the registry."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.base import MessageMapper
from ditto_compat.connectivity.mapping.registry import (
    ENGINES,
    compile_conditions,
    conditions_hold,
    create_mapper,
)
from ditto_compat.connectivity.placeholders import PlaceholderSource
from ditto_compat.errors import DittoError
from ditto_compat.model.pointer import MISSING
from ditto_compat.protocol.envelope import Envelope, parse_envelope, parse_topic

DITTO_JSON = "application/vnd.eclipse.ditto+json"


def mapper(engine: str, options: dict[str, Any] | None = None) -> MessageMapper:
    return create_mapper(engine, options or {}, connection_id="conn-1")


def event(action: str, path: str, value: Any = MISSING, **kwargs: Any) -> Envelope:
    return Envelope(
        topic=parse_topic(f"thing/id/things/twin/events/{action}"),
        headers=kwargs.pop("headers", {"content-type": "application/json"}),
        path=path,
        value=value,
        **kwargs,
    )


# ------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("engine", [*ENGINES, "connectionStatus", "ditto"])
def test_every_alias_is_known(engine: str) -> None:
    options = {"thingId": "org.example:x", "thing": {"thingId": "org.example:x"}}
    created = mapper(engine, options)
    assert hasattr(created, "map_incoming") and hasattr(created, "map_outgoing")


@pytest.mark.parametrize(
    ("engine", "options"),
    [
        ("Protobuf", {}),
        ("ConnectionStatus", {}),
        ("ConnectionStatus", {"thingId": "not a thing id"}),
        ("ImplicitThingCreation", {}),
        ("ImplicitThingCreation", {"thing": {"attributes": {}}}),
        ("ImplicitThingCreation", {"thing": {"thingId": "bad id"}}),
        ("ImplicitThingCreation", {"thing": {"thingId": "{{ header:x | fn:nope() }}"}}),
        ("ImplicitThingCreation", {"thing": "not an object"}),
        ("Normalized", {"fields": "attributes(a"}),
        ("RawMessage", {"incomingMessageHeaders": {"content-type": "{{ unknown:x }}"}}),
    ],
)
def test_bad_definitions_are_refused(engine: str, options: dict[str, Any]) -> None:
    with pytest.raises(DittoError) as caught:
        mapper(engine, options)
    assert caught.value.error_code == "connectivity:connection.configuration.invalid"
    assert caught.value.status == 400


def test_conditions() -> None:
    # connectivity-mapping "Mapping conditions"
    conditions = compile_conditions(
        {"sampleCondition": "fn:filter(header:incoming-mapping-required,'eq','true')"}
    )
    assert conditions_hold(conditions, PlaceholderSource(headers={"incoming-mapping-required": "true"}))
    assert not conditions_hold(conditions, PlaceholderSource(headers={"incoming-mapping-required": "false"}))
    assert not conditions_hold(conditions, PlaceholderSource(headers={}))
    assert conditions_hold((), PlaceholderSource())
    assert conditions_hold(["fn:filter(connection:id,'eq','c')"], PlaceholderSource(connection_id="c"))
    with pytest.raises(DittoError) as caught:
        compile_conditions({"bad": "fn:filter(nope:x,'eq','true')"})
    assert caught.value.error_code == "connectivity:connection.configuration.invalid"


# ------------------------------------------------------------------------------------------- Ditto

PROTOCOL_MESSAGE = {
    "topic": "org.example/lamp-1/things/twin/commands/modify",
    "headers": {"correlation-id": "c-1", "response-required": False},
    "path": "/features/light/properties/on",
    "value": True,
}


def test_ditto_incoming_parses_the_protocol_message() -> None:
    message = ExternalMessage(
        headers={"content-type": DITTO_JSON}, text=orjson.dumps(PROTOCOL_MESSAGE).decode()
    )
    [envelope] = mapper("Ditto").map_incoming(message)
    assert envelope.to_json() == PROTOCOL_MESSAGE


def test_ditto_incoming_reads_utf8_bytes() -> None:
    message = ExternalMessage(payload=orjson.dumps(PROTOCOL_MESSAGE))
    [envelope] = mapper("Ditto").map_incoming(message)
    assert str(envelope.topic) == PROTOCOL_MESSAGE["topic"]


@pytest.mark.parametrize(
    "payload",
    [
        ExternalMessage(text="not json"),
        ExternalMessage(text='{"topic": "a/b/c"}'),
        ExternalMessage(text=""),
        ExternalMessage(payload=b"\xff\xfe"),
        ExternalMessage(),
    ],
)
def test_ditto_incoming_failures(payload: ExternalMessage) -> None:
    with pytest.raises(DittoError) as caught:
        mapper("Ditto").map_incoming(payload)
    assert caught.value.error_code == "connectivity:message.mapping.failed"
    assert caught.value.status == 400
    assert caught.value.description


def test_ditto_outgoing_is_the_protocol_json() -> None:
    envelope = parse_envelope(PROTOCOL_MESSAGE)
    [message] = mapper("Ditto").map_outgoing(envelope)
    assert message.content_type == DITTO_JSON
    assert message.headers["correlation-id"] == "c-1"
    assert message.headers["response-required"] == "false"
    assert orjson.loads(message.text or "") == PROTOCOL_MESSAGE


# ------------------------------------------------------------------------------------------- Normalized


def test_normalized_modified_event_as_in_the_doc() -> None:
    envelope = event("modified", "/features/sensors/properties/temperature/value", 42)
    [message] = mapper("Normalized").map_outgoing(envelope)
    assert message.content_type == "application/json"
    assert orjson.loads(message.text or "") == {
        "thingId": "thing:id",
        "features": {"sensors": {"properties": {"temperature": {"value": 42}}}},
        "_context": {
            "topic": "thing/id/things/twin/events/modified",
            "path": "/features/sensors/properties/temperature/value",
            "value": 42,
            "headers": {"content-type": "application/json"},
        },
    }


def test_normalized_thing_deleted_as_in_the_doc() -> None:
    envelope = event("deleted", "/", timestamp="2023-12-01T10:30:00Z", revision=7)
    [message] = mapper("Normalized").map_outgoing(envelope)
    body = orjson.loads(message.text or "")
    assert body["_deleted"] == "2023-12-01T10:30:00Z"
    assert body["_revision"] == 7
    assert body["_modified"] == "2023-12-01T10:30:00Z"
    assert body["_context"]["value"] is None


def test_normalized_created_spreads_the_thing_and_applies_fields() -> None:
    thing = {"thingId": "thing:id", "attributes": {"a": 1, "b": 2}, "features": {}}
    envelope = event("created", "/", thing, revision=1, timestamp="2024-01-01T00:00:00Z")
    [message] = mapper("Normalized", {"fields": "thingId,attributes/a,_revision"}).map_outgoing(envelope)
    assert orjson.loads(message.text or "") == {"thingId": "thing:id", "attributes": {"a": 1}, "_revision": 1}


def test_normalized_merged_drops_nulls_and_tracks_deleted_fields() -> None:
    envelope = event("merged", "/attributes", {"location": None, "kept": 1}, timestamp="2025-01-27T10:00:00Z")
    [message] = mapper("Normalized", {"includeDeletedFields": True}).map_outgoing(envelope)
    body = orjson.loads(message.text or "")
    assert body["attributes"] == {"kept": 1}
    assert body["_deletedFields"] == {"attributes": {"location": "2025-01-27T10:00:00Z"}}


def test_normalized_partial_deletion_only_with_include_deleted_fields() -> None:
    envelope = event("deleted", "/features/myFeature", timestamp="2025-01-27T11:00:00Z")
    assert mapper("Normalized").map_outgoing(envelope) == []
    [message] = mapper("Normalized", {"includeDeletedFields": "true"}).map_outgoing(envelope)
    assert orjson.loads(message.text or "")["_deletedFields"] == {
        "features": {"myFeature": "2025-01-27T11:00:00Z"}
    }


def test_normalized_merges_extra_fields_and_drops_other_signals() -> None:
    envelope = event("modified", "/attributes/a", 1, extra={"attributes": {"a": 0, "site": "x"}})
    [message] = mapper("Normalized").map_outgoing(envelope)
    assert orjson.loads(message.text or "")["attributes"] == {"a": 1, "site": "x"}
    live = parse_envelope(
        {
            **PROTOCOL_MESSAGE,
            "topic": "org.example/lamp-1/things/live/messages/hi",
            "path": "/inbox/messages/hi",
        }
    )
    assert mapper("Normalized").map_outgoing(live) == []
    assert mapper("Normalized").map_outgoing(parse_envelope(PROTOCOL_MESSAGE)) == []
    assert mapper("Normalized").map_incoming(ExternalMessage(text="{}")) == []


# ------------------------------------------------------------------------------------------- ImplicitThingCreation

ITC_OPTIONS = {
    # connectivity-mapping's example configuration
    "thing": {
        "thingId": "{{ header:device_id }}",
        "attributes": {
            "CreatedBy": "ImplicitThingCreation",
            "at": "{{ time:now_epoch_millis | fn:default('x') }}",
        },
        "_policy": {"entries": {"DEVICE": {"subjects": {"{{ request:subjectId }}": {"type": "device"}}}}},
    },
    "commandHeaders": {"If-None-Match": "*", "correlation-id": "{{ header:correlation-id }}"},
    "allowPolicyLockout": True,
}


def test_implicit_thing_creation_builds_a_create_command() -> None:
    message = ExternalMessage(
        headers={"device_id": "org.example:dev-7", "correlation-id": "c-9"},
        text="anything",
        transport={"request_subject": "integration:hono"},
    )
    [envelope] = mapper("ImplicitThingCreation", ITC_OPTIONS).map_incoming(message)
    assert str(envelope.topic) == "org.example/dev-7/things/twin/commands/create"
    assert envelope.path == "/"
    assert envelope.value["thingId"] == "org.example:dev-7"
    assert envelope.value["attributes"]["CreatedBy"] == "ImplicitThingCreation"
    assert envelope.value["attributes"]["at"].isdigit()
    assert envelope.value["_policy"]["entries"]["DEVICE"]["subjects"] == {
        "integration:hono": {"type": "device"}
    }
    assert envelope.headers == {"correlation-id": "c-9", "if-none-match": "*", "allow-policy-lockout": True}


def test_implicit_thing_creation_leaves_out_unresolved_command_headers() -> None:
    options = {
        "thing": {"thingId": "{{ header:device_id }}"},
        "commandHeaders": {"x": "{{ header:missing }}"},
    }
    [envelope] = mapper("ImplicitThingCreation", options).map_incoming(
        ExternalMessage(headers={"device_id": "a:b"})
    )
    assert envelope.headers == {"if-none-match": "*", "allow-policy-lockout": True}


@pytest.mark.parametrize("headers", [{}, {"device_id": "not a thing id"}])
def test_implicit_thing_creation_fails_without_a_thing_id(headers: dict[str, str]) -> None:
    with pytest.raises(DittoError) as caught:
        mapper("ImplicitThingCreation", ITC_OPTIONS).map_incoming(ExternalMessage(headers=headers))
    assert caught.value.error_code == "connectivity:message.mapping.failed"


def test_implicit_thing_creation_maps_nothing_outbound() -> None:
    assert mapper("ImplicitThingCreation", ITC_OPTIONS).map_outgoing(parse_envelope(PROTOCOL_MESSAGE)) == []


# ------------------------------------------------------------------------------------------- ConnectionStatus


def status_message(**headers: str) -> ExternalMessage:
    return ExternalMessage(headers={"device_id": "eclipse:ditto", **headers})


CS_OPTIONS = {"thingId": "{{ header:device_id }}"}


def test_connection_status_ttd_positive_modifies_the_feature() -> None:
    [envelope] = mapper("ConnectionStatus", CS_OPTIONS).map_incoming(
        status_message(**{"creation-time": "1572358578000", "ttd": "300"})
    )
    assert str(envelope.topic) == "eclipse/ditto/things/twin/commands/modify"
    assert envelope.path == "/features/ConnectionStatus"
    # the doc's example feature
    assert envelope.value == {
        "definition": ["org.eclipse.ditto:ConnectionStatus:1.0.0"],
        "properties": {
            "status": {"readySince": "2019-10-29T14:16:18Z", "readyUntil": "2019-10-29T14:21:18Z"}
        },
    }
    assert envelope.headers["response-required"] is False


def test_connection_status_ttd_minus_one_is_ready_until_further_notice() -> None:
    [envelope] = mapper("ConnectionStatus", {**CS_OPTIONS, "featureId": "Conn"}).map_incoming(
        status_message(**{"creation-time": "1572358578123", "ttd": "-1"})
    )
    assert envelope.path == "/features/Conn"
    assert envelope.value["properties"]["status"] == {
        "readySince": "2019-10-29T14:16:18.123Z",
        "readyUntil": "9999-12-31T23:59:59Z",
    }


def test_connection_status_ttd_zero_sets_ready_until() -> None:
    [envelope] = mapper("ConnectionStatus", CS_OPTIONS).map_incoming(
        status_message(**{"creation-time": "1572358578000", "ttd": "0"})
    )
    assert envelope.path == "/features/ConnectionStatus/properties/status/readyUntil"
    assert envelope.value == "2019-10-29T14:16:18Z"


@pytest.mark.parametrize(
    "headers",
    [
        {"ttd": "0"},
        {"creation-time": "1"},
        {"creation-time": "x", "ttd": "0"},
        {"creation-time": "-1", "ttd": "0"},
        {"creation-time": "1", "ttd": "-2"},
    ],
)
def test_connection_status_drops_messages_without_usable_headers(headers: dict[str, str]) -> None:
    assert mapper("ConnectionStatus", CS_OPTIONS).map_incoming(status_message(**headers)) == []


# ------------------------------------------------------------------------------------------- RawMessage

RAW_HEADERS = {
    # connectivity-mapping's RawMessage example
    "content-type": "application/octet-stream",
    "status": "200",
    "ditto-message-subject": "heatUp",
    "ditto-message-direction": "TO",
    "ditto-message-thing-id": "org.eclipse.ditto:smartcoffee",
    "ditto-message-feature-id": "water-tank",
}
RAW_ENVELOPE = {
    "topic": "org.eclipse.ditto/smartcoffee/things/live/messages/heatUp",
    "headers": {"content-type": "application/octet-stream"},
    "path": "/features/water-tank/inbox/messages/heatUp",
    "value": "AQIDBAUG",
    "status": 200,
}


def test_raw_message_incoming_binary_as_in_the_doc() -> None:
    message = ExternalMessage(headers=RAW_HEADERS, payload=bytes([1, 2, 3, 4, 5, 6]))
    [envelope] = mapper("RawMessage").map_incoming(message)
    assert envelope.to_json() == RAW_ENVELOPE


def test_raw_message_outgoing_binary_as_in_the_doc() -> None:
    [message] = mapper("RawMessage").map_outgoing(parse_envelope(RAW_ENVELOPE))
    assert message.payload == bytes([1, 2, 3, 4, 5, 6])
    for key, value in RAW_HEADERS.items():
        assert message.headers[key] == value


def test_raw_message_json_and_text_payloads_and_fallbacks() -> None:
    options = {
        "outgoingContentType": "application/octet-stream",
        "incomingMessageHeaders": {
            "content-type": "{{ header:content-type | fn:default('application/octet-stream') }}",
            "ditto-message-subject": "{{ header:ditto-message-subject | fn:default('fallback-subject') }}",
            "ditto-message-direction": "FROM",
            "ditto-message-thing-id": "{{ header:ditto-message-thing-id | fn:default('ns:fallback-thing') }}",
        },
    }
    raw = mapper("RawMessage", options)
    [envelope] = raw.map_incoming(
        ExternalMessage(headers={"content-type": "application/json"}, text='{"a": 1}')
    )
    assert str(envelope.topic) == "ns/fallback-thing/things/live/messages/fallback-subject"
    assert envelope.path == "/outbox/messages/fallback-subject"
    assert envelope.value == {"a": 1}
    assert envelope.status is None
    [text] = raw.map_incoming(ExternalMessage(headers={"content-type": "text/plain"}, text="hello"))
    assert text.value == "hello"
    [out] = raw.map_outgoing(text)
    assert out.text == "hello" and out.headers["ditto-message-direction"] == "FROM"
    no_type = Envelope(
        topic=text.topic, headers={}, path=text.path, value=base64.b64encode(b"\x00\x01").decode()
    )
    [binary] = raw.map_outgoing(no_type)
    assert binary.content_type == "application/octet-stream" and binary.payload == b"\x00\x01"


def test_raw_message_ditto_content_type_and_non_messages_go_through_the_ditto_mapper() -> None:
    raw = mapper("RawMessage")
    message = ExternalMessage(
        headers={"content-type": DITTO_JSON}, text=orjson.dumps(PROTOCOL_MESSAGE).decode()
    )
    [envelope] = raw.map_incoming(message)
    assert envelope.to_json() == PROTOCOL_MESSAGE
    [out] = raw.map_outgoing(envelope)
    assert out.content_type == DITTO_JSON and orjson.loads(out.text or "") == PROTOCOL_MESSAGE


@pytest.mark.parametrize(
    "headers",
    [
        {"ditto-message-subject": "s"},
        {"ditto-message-thing-id": "a:b"},
        {"ditto-message-thing-id": "a:b", "ditto-message-subject": "s", "status": "ok"},
        {"ditto-message-thing-id": "a:b", "ditto-message-subject": "s", "content-type": "application/json"},
    ],
)
def test_raw_message_incoming_failures(headers: dict[str, str]) -> None:
    with pytest.raises(DittoError) as caught:
        mapper("RawMessage").map_incoming(ExternalMessage(headers=headers, text="{not json"))
    assert caught.value.error_code == "connectivity:message.mapping.failed"


# ------------------------------------------------------------------------------------------- UpdateTwinWithLiveResponse

LIVE_RESPONSE = {
    "topic": "org.example/lamp-1/things/live/commands/retrieve",
    "headers": {"correlation-id": "c-5"},
    "path": "/attributes",
    "value": {"location": "kitchen"},
    "status": 200,
}


def test_update_twin_with_live_response_merges_the_value() -> None:
    options = {
        "dittoHeadersForMerge": {
            "if-match": "*",
            "response-required": False,
            "put-metadata": [{"key": "*/update-hint", "value": "{{ header:some-custom-hint }}"}],
        }
    }
    message = ExternalMessage(
        headers={"some-custom-hint": "hint-1"}, text=orjson.dumps(LIVE_RESPONSE).decode()
    )
    [merge] = mapper("UpdateTwinWithLiveResponse", options).map_incoming(message)
    assert str(merge.topic) == "org.example/lamp-1/things/twin/commands/merge"
    assert merge.path == "/attributes"
    assert merge.value == {"location": "kitchen"}
    assert merge.headers == {
        "if-match": "*",
        "response-required": False,
        "put-metadata": [{"key": "*/update-hint", "value": "hint-1"}],
        "correlation-id": "c-5-merge-into-twin",
    }


def test_update_twin_with_live_response_default_headers_and_other_signals() -> None:
    updater = mapper("UpdateTwinWithLiveResponse")
    [merge] = updater.map_incoming(ExternalMessage(text=orjson.dumps(LIVE_RESPONSE).decode()))
    assert merge.headers["if-match"] == "*" and merge.headers["response-required"] is False
    not_retrieve = {**LIVE_RESPONSE, "topic": "org.example/lamp-1/things/live/commands/modify"}
    twin = {**LIVE_RESPONSE, "topic": "org.example/lamp-1/things/twin/commands/retrieve"}
    command = {key: value for key, value in LIVE_RESPONSE.items() if key != "status"}
    for body in (not_retrieve, twin, command):
        assert updater.map_incoming(ExternalMessage(text=orjson.dumps(body).decode())) == []
    assert updater.map_incoming(ExternalMessage(text="garbage")) == []
    assert updater.map_outgoing(parse_envelope(LIVE_RESPONSE)) == []
