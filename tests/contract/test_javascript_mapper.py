"""The JavaScript mapper in V8 (``connectivity-mapping`` "JavaScript mapping engine" and "JavaScript examples"):
the doc's scripts run unchanged, both directions, and a failing script fails the message, never the mapper."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import orjson
import pytest

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.javascript import JavaScriptMapper
from ditto_compat.connectivity.mapping.registry import create_mapper
from ditto_compat.errors import DittoError
from ditto_compat.protocol.envelope import parse_envelope


def js(options: dict[str, Any], **kwargs: Any) -> JavaScriptMapper:
    return JavaScriptMapper(options, connection_id="conn-js", **kwargs)


# connectivity-mapping "Text payload example", verbatim
TEXT_EXAMPLE = """
function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
  if (contentType !== 'application/json') return null;

  let jsonData = JSON.parse(textPayload);
  let value = {
    temperature: { properties: { value: parseFloat(jsonData.temp.split(" ")[0]) } },
    pressure: { properties: { value: jsonData.pres.value } },
    humidity: { properties: { value: jsonData.hum } }
  };

  return Ditto.buildDittoProtocolMsg(
    'org.eclipse.ditto', headers['device_id'],
    'things', 'twin', 'commands', 'modify',
    '/features', headers, value
  );
}
"""

# connectivity-mapping "Binary payload example", verbatim
BINARY_EXAMPLE = """
function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
  if (contentType !== 'application/octet-stream') return null;

  let view = new DataView(bytePayload);
  let value = {
    temperature: { properties: { value: view.getInt16(0) / 100.0 } },
    pressure: { properties: { value: view.getInt16(2) } },
    humidity: { properties: { value: view.getUint8(4) } }
  };

  return Ditto.buildDittoProtocolMsg(
    'org.eclipse.ditto', headers['device_id'],
    'things', 'twin', 'commands', 'modify',
    '/features', headers, value
  );
}
"""

# connectivity-mapping "Mapping outgoing messages", verbatim
OUTGOING_EXAMPLE = """
function mapFromDittoProtocolMsg(namespace, name, group, channel,
    criterion, action, path, dittoHeaders, value, status, extra) {
  let headers = dittoHeaders;
  let textPayload = JSON.stringify(
    Ditto.buildDittoProtocolMsg(namespace, name, group, channel,
      criterion, action, path, dittoHeaders, value, status, extra)
  );
  return Ditto.buildExternalMsg(headers, textPayload, null,
    'application/vnd.eclipse.ditto+json');
}
"""

# what our users run: Kafka telemetry JSON into a feature's properties
KAFKA_TELEMETRY = """
function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
  const data = JSON.parse(textPayload);
  return Ditto.buildDittoProtocolMsg(
    'org.example', data.deviceId, 'things', 'twin', 'commands', 'modify',
    '/features/' + data.sensorType + '/properties',
    { 'correlation-id': headers['correlation-id'] || data.deviceId + '-' + data.timestamp },
    { value: data.value, unit: data.unit, timestamp: data.timestamp }
  );
}
"""


def test_the_text_payload_example() -> None:
    mapper = js({"incomingScript": TEXT_EXAMPLE})
    message = ExternalMessage(
        headers={"content-type": "application/json", "device_id": "sensor1"},
        text='{"temp": "23.42 °C","hum": 78,"pres": {"value": 760,"unit": "mmHg"}}',
    )
    [envelope] = mapper.map_incoming(message)
    assert str(envelope.topic) == "org.eclipse.ditto/sensor1/things/twin/commands/modify"
    assert envelope.path == "/features"
    assert envelope.value == {
        "temperature": {"properties": {"value": 23.42}},
        "pressure": {"properties": {"value": 760}},
        "humidity": {"properties": {"value": 78}},
    }
    assert envelope.headers == {"content-type": "application/json", "device_id": "sensor1"}
    # another content type: the script returns null and the message is dropped
    assert mapper.map_incoming(ExternalMessage(headers={"content-type": "text/plain"}, text="x")) == []


def test_the_binary_payload_example() -> None:
    mapper = js({"incomingScript": BINARY_EXAMPLE})
    payload = bytes.fromhex("09EF03F72A")
    message = ExternalMessage(
        headers={"content-type": "application/octet-stream", "device_id": "sensor1"}, payload=payload
    )
    [envelope] = mapper.map_incoming(message)
    assert envelope.value == {
        "temperature": {"properties": {"value": 25.43}},
        "pressure": {"properties": {"value": 1015}},
        "humidity": {"properties": {"value": 42}},
    }


def test_kafka_telemetry_into_feature_properties() -> None:
    mapper = create_mapper("JavaScript", {"incomingScript": KAFKA_TELEMETRY}, connection_id="kafka-1")
    text = (
        '{"deviceId":"device-001","sensorType":"temperature","value":25.5,"unit":"°C",'
        '"timestamp":"2026-01-01T00:00:00Z"}'
    )
    message = ExternalMessage(
        headers={"kafka.topic": "telemetry", "kafka.key": "device-001"}, payload=text.encode()
    )
    [envelope] = mapper.map_incoming(message)
    assert str(envelope.topic) == "org.example/device-001/things/twin/commands/modify"
    assert envelope.topic.entity_id == "org.example:device-001"
    assert envelope.path == "/features/temperature/properties"
    assert envelope.value == {"value": 25.5, "unit": "°C", "timestamp": "2026-01-01T00:00:00Z"}
    assert envelope.correlation_id == "device-001-2026-01-01T00:00:00Z"


def test_the_outgoing_example_and_the_default_incoming() -> None:
    mapper = js({"outgoingScript": OUTGOING_EXAMPLE})
    envelope = parse_envelope(
        {
            "topic": "org.example/lamp-1/things/twin/events/modified",
            "headers": {"correlation-id": "c-1", "response-required": False},
            "path": "/features/light/properties/on",
            "value": True,
            "revision": 3,
        }
    )
    [message] = mapper.map_outgoing(envelope)
    assert message.content_type == "application/vnd.eclipse.ditto+json"
    assert message.headers["correlation-id"] == "c-1"
    assert message.headers["response-required"] == "false"
    assert orjson.loads(message.text or "") == {
        "topic": "org.example/lamp-1/things/twin/events/modified",
        "path": "/features/light/properties/on",
        "headers": {"correlation-id": "c-1", "response-required": False},
        "value": True,
    }
    # no incoming script: the payload is Ditto Protocol JSON
    [back] = mapper.map_incoming(ExternalMessage(text=orjson.dumps(envelope.to_json()).decode()))
    assert back.to_json() == envelope.to_json()


def test_outgoing_bytes_arrays_of_messages_and_wrappers() -> None:
    script = """
    function mapFromDittoProtocolMsgWrapper(msg) {
      const bytes = new Uint8Array([1, 2, msg.revision]);
      return [
        Ditto.buildExternalMsg({'x-rev': msg.revision, 'x-obj': {a: 1}}, null, bytes.buffer,
          'application/octet-stream'),
        Ditto.buildExternalMsg({}, 'text ' + msg.path, null, 'text/plain'),
        Ditto.buildExternalMsg({}, 'ignored', new DataView(bytes.buffer, 1, 2), undefined)
      ];
    }
    """
    envelope = parse_envelope(
        {
            "topic": "a/b/things/twin/events/modified",
            "headers": {},
            "path": "/attributes",
            "value": 1,
            "revision": 9,
        }
    )
    first, second, third = js({"outgoingScript": script}).map_outgoing(envelope)
    assert first.payload == bytes([1, 2, 9])
    assert first.headers == {"x-rev": "9", "x-obj": '{"a":1}', "content-type": "application/octet-stream"}
    assert second.text == "text /attributes" and second.content_type == "text/plain"
    assert third.payload == bytes([2, 9]) and third.content_type is None


def test_incoming_arrays_null_and_string_helpers() -> None:
    script = """
    function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
      const text = Ditto.arrayBufferToString(bytePayload);
      if (text === 'drop') return null;
      const round = Ditto.arrayBufferToString(Ditto.stringToArrayBuffer(text));
      return text.split(',').map(function (name) {
        return Ditto.buildDittoProtocolMsg('ns', name, 'things', 'twin', 'commands', 'modify', '/attributes/raw',
          {}, round);
      });
    }
    """
    mapper = js({"incomingScript": script})
    envelopes = mapper.map_incoming(ExternalMessage(payload=b"a,b"))
    assert [str(e.topic) for e in envelopes] == [
        "ns/a/things/twin/commands/modify",
        "ns/b/things/twin/commands/modify",
    ]
    assert envelopes[0].value == "a,b"
    assert mapper.map_incoming(ExternalMessage(payload=b"drop")) == []


def test_the_default_script_of_ditto_applies_without_overrides() -> None:
    # an incoming script that defines something else keeps Ditto's default mapToDittoProtocolMsg
    mapper = js({"incomingScript": "var unrelated = 1;"})
    body = {"topic": "ns/x/things/twin/commands/delete", "headers": {}, "path": "/"}
    message = ExternalMessage(
        headers={"content-type": "application/octet-stream"}, payload=orjson.dumps(body)
    )
    [envelope] = mapper.map_incoming(message)
    assert str(envelope.topic) == "ns/x/things/twin/commands/delete"


@pytest.mark.parametrize(
    ("script", "why"),
    [
        ("function mapToDittoProtocolMsg() { throw new Error('boom'); }", "boom"),
        ("function mapToDittoProtocolMsg() { return 'a string'; }", "not a Ditto Protocol message"),
        (
            "function mapToDittoProtocolMsg() { return {topic: 'x/y/z', headers: {}, path: '/'}; }",
            "invalid Ditto Protocol message",
        ),
        ("function mapToDittoProtocolMsg() { return undefinedVariable.field; }", "undefinedVariable"),
    ],
)
def test_failing_scripts_fail_the_message(script: str, why: str) -> None:
    mapper = js({"incomingScript": script})
    with pytest.raises(DittoError) as caught:
        mapper.map_incoming(ExternalMessage(text="{}"))
    assert caught.value.error_code == "connectivity:message.mapping.failed"
    assert why in (caught.value.description or "")


def test_an_endless_loop_is_stopped_and_the_mapper_goes_on() -> None:
    script = """
    function mapToDittoProtocolMsg(headers, textPayload) {
      if (textPayload === 'loop') { while (true) {} }
      return Ditto.buildDittoProtocolMsg('ns', 'x', 'things', 'twin', 'commands', 'delete', '/', {}, undefined);
    }
    """
    mapper = js({"incomingScript": script}, timeout_ms=100)
    started = time.monotonic()
    with pytest.raises(DittoError) as caught:
        mapper.map_incoming(ExternalMessage(text="loop"))
    assert time.monotonic() - started < 2
    assert "100 ms" in (caught.value.description or "")
    [envelope] = mapper.map_incoming(ExternalMessage(text="ok"))
    assert envelope.topic.action == "delete"


def test_memory_exhaustion_is_stopped_and_the_mapper_goes_on() -> None:
    script = """
    var hoard = [];
    function mapToDittoProtocolMsg(headers, textPayload) {
      if (textPayload === 'grow') { while (true) { hoard.push(new Array(100000).fill(1)); } }
      return Ditto.buildDittoProtocolMsg('ns', 'x', 'things', 'twin', 'commands', 'delete', '/', {}, undefined);
    }
    """
    mapper = js({"incomingScript": script}, timeout_ms=5000, max_memory=32 * 1024 * 1024)
    with pytest.raises(DittoError) as caught:
        mapper.map_incoming(ExternalMessage(text="grow"))
    assert "memory" in (caught.value.description or "")
    [envelope] = mapper.map_incoming(ExternalMessage(text="ok"))
    assert envelope.topic.action == "delete"


def test_outgoing_without_payload_fails() -> None:
    script = (
        "function mapFromDittoProtocolMsg() { return Ditto.buildExternalMsg({}, null, null, 'text/plain'); }"
    )
    envelope = parse_envelope({"topic": "a/b/things/twin/events/deleted", "headers": {}, "path": "/"})
    with pytest.raises(DittoError) as caught:
        js({"outgoingScript": script}).map_outgoing(envelope)
    assert "Neither <bytePayload> nor <textPayload>" in (caught.value.description or "")


@pytest.mark.parametrize(
    "options",
    [
        {"incomingScript": "function mapToDittoProtocolMsg( {"},
        {"outgoingScript": "throw new Error('at load');"},
        {"incomingScript": "//" + "x" * 50_001},
    ],
)
def test_scripts_that_cannot_load_make_the_definition_invalid(options: dict[str, Any]) -> None:
    with pytest.raises(DittoError) as caught:
        create_mapper("JavaScript", options, connection_id="c")
    assert caught.value.error_code == "connectivity:connection.configuration.invalid"


# connectivity-mapping "Working with byte payloads", the ByteBuffer.js lines, in a mapping function; and long.js
BYTEBUFFER_EXAMPLE = """
function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
  let byteBuf = Ditto.asByteBuffer(bytePayload);
  let numberFromBytes = parseInt(byteBuf.toHex(0, 4), 16);

  let base64encoded = byteBuf.toBase64();
  let buf = dcodeIO.ByteBuffer.fromBase64(base64encoded);

  let value = {
    number: numberFromBytes,
    base64: base64encoded,
    int: buf.readInt(),
    text: buf.readUTF8String(4),
    remaining: buf.remaining(),
    big: buf.readLong().toString(),
    hasLong: typeof dcodeIO.Long === 'function'
  };
  return Ditto.buildDittoProtocolMsg('org.eclipse.ditto', 'd', 'things', 'twin', 'commands', 'modify',
    '/attributes/decoded', headers, value);
}
"""


def test_the_bytebuffer_and_long_libraries_load_as_in_ditto() -> None:
    mapper = js({"incomingScript": BYTEBUFFER_EXAMPLE, "loadBytebufferJS": "true", "loadLongJS": True})
    payload = struct.pack(">i", -2) + b"abcd" + struct.pack(">q", 2**62 + 5)
    [envelope] = mapper.map_incoming(ExternalMessage(payload=payload))
    assert envelope.value == {
        "number": 0xFFFFFFFE,
        "base64": base64.b64encode(payload).decode(),
        "int": -2,
        "text": "abcd",
        "remaining": 8,
        "big": str(2**62 + 5),  # a 64-bit integer, exactly: long.js
        "hasLong": True,
    }


def test_without_the_library_options_dcode_io_is_undefined() -> None:
    mapper = js({"incomingScript": BYTEBUFFER_EXAMPLE})
    with pytest.raises(DittoError) as caught:
        mapper.map_incoming(ExternalMessage(payload=b"\x00\x01"))
    assert caught.value.error_code == "connectivity:message.mapping.failed"
    assert "dcodeIO" in (caught.value.description or "")
    # bytebuffer.js alone works, without 64-bit integers
    only_bytebuffer = js({"incomingScript": BYTEBUFFER_EXAMPLE, "loadBytebufferJS": True})
    with pytest.raises(DittoError):
        only_bytebuffer.map_incoming(ExternalMessage(payload=struct.pack(">i", 1) + b"abcd" + bytes(8)))


async def test_mappers_made_and_run_on_an_event_loop_keep_their_time_limit() -> None:
    """The server creates and calls mappers on its asyncio loop, where V8 calls with a time limit must still
    work (and still stop a runaway script)."""
    script = """
    function mapToDittoProtocolMsg(headers, textPayload) {
      if (textPayload === 'loop') { while (true) {} }
      return Ditto.buildDittoProtocolMsg('ns', 'x', 'things', 'twin', 'commands', 'delete', '/', {}, undefined);
    }
    """
    mapper = js({"incomingScript": script}, timeout_ms=100)
    [envelope] = mapper.map_incoming(ExternalMessage(text="ok"))
    assert envelope.topic.action == "delete"
    with pytest.raises(DittoError):
        mapper.map_incoming(ExternalMessage(text="loop"))
    [envelope] = mapper.map_incoming(ExternalMessage(text="ok"))
    assert envelope.topic.entity_id == "ns:x"
