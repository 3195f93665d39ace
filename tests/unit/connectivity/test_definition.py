"""Connection definitions as Ditto validates and renders them (``basic-connections``, ``connection.json``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ditto_compat.connectivity.definition import connection_from_json, connection_to_json
from ditto_compat.connectivity.errors import ConnectionConfigurationInvalid, ConnectionIdInvalid
from ditto_compat.errors import DittoError

# The MQTT example of connectivity-protocol-bindings-mqtt, with options this server does not act on.
FULL: dict[str, Any] = {
    "id": "mqtt-example",
    "name": "mqtt-example",
    "connectionType": "mqtt",
    "connectionStatus": "open",
    "uri": "tcp://user:secret@test.mosquitto.org:1883",
    "sources": [
        {
            "addresses": ["eclipse-ditto-sandbox/#"],
            "consumerCount": 1,
            "qos": 1,
            "authorizationContext": ["nginx:ditto"],
            "enforcement": {
                "input": "{{ source:address }}",
                "filters": ["eclipse-ditto-sandbox/{{ thing:id }}"],
            },
            "acknowledgementRequests": {"includes": [], "filter": "fn:filter(header:qos,'ne','0')"},
            "declaredAcks": ["{{connection:id}}:custom", "mqtt-example:other"],
            "headerMapping": {"correlation-id": "{{ header:correlation-id }}"},
            "payloadMapping": ["Ditto", "js"],
            "replyTarget": {
                "enabled": True,
                "address": "replies/{{ thing:id }}",
                "headerMapping": {},
                "expectedResponseTypes": ["response", "error", "nack"],
            },
            "futureSourceOption": {"x": 1},
        }
    ],
    "targets": [
        {
            "address": "eclipse-ditto-sandbox/{{ thing:id }}",
            "topics": [
                "_/_/things/twin/events?namespaces=org.eclipse.ditto&filter=gt(attributes/counter,42)",
                "_/_/things/live/messages?extraFields=attributes/placement",
                "_/_/connections/announcements",
            ],
            "qos": 0,
            "authorizationContext": ["nginx:ditto"],
            "issuedAcknowledgementLabel": "{{connection:id}}:published",
            "headerMapping": {},
            "payloadMapping": ["Normalized"],
        }
    ],
    "clientCount": 1,
    "failoverEnabled": True,
    "validateCertificates": False,
    "processorPoolSize": 3,
    "specificConfig": {"clientId": "ditto", "cleanSession": "false"},
    "mappingDefinitions": {
        "js": {
            "mappingEngine": "JavaScript",
            "options": {"incomingScript": "function mapToDittoProtocolMsg() {}"},
        }
    },
    "tags": ["sandbox"],
    "credentials": {
        "type": "client-cert",
        "cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "key": "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----",
    },
    "sshTunnel": {"enabled": False, "uri": "ssh://localhost:22", "credentials": {"type": "password"}},
}


def minimal(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "connectionType": "kafka",
        "connectionStatus": "closed",
        "uri": "tcp://127.0.0.1:9092",
    }
    doc.update(changes)
    return doc


def test_a_full_definition_round_trips_with_unknown_keys_and_uri_credentials() -> None:
    connection = connection_from_json(copy.deepcopy(FULL), "mqtt-example")
    assert connection_to_json(connection) == FULL
    assert connection.uri == "tcp://user:secret@test.mosquitto.org:1883"
    assert connection.extra.keys() == {"credentials", "sshTunnel"}
    assert connection.sources[0].extra == {"futureSourceOption": {"x": 1}}


def test_target_topics_are_parsed_into_namespaces_filter_and_extra_fields() -> None:
    topics = connection_from_json(copy.deepcopy(FULL), "mqtt-example").targets[0].topics
    assert [t.kind for t in topics] == ["twin/events", "live/messages", "connections/announcements"]
    assert topics[0].namespaces == frozenset({"org.eclipse.ditto"})
    assert topics[0].filter == "gt(attributes/counter,42)"
    assert topics[1].extra_fields == "attributes/placement"
    assert topics[1].namespaces is None and topics[2].filter is None


def test_defaults_are_made_explicit_as_ditto_renders_them() -> None:
    rendered = connection_to_json(
        connection_from_json(minimal(sources=[{"addresses": ["t"], "authorizationContext": ["a:b"]}]), "c1")
    )
    assert rendered == {
        "id": "c1",
        "connectionType": "kafka",
        "connectionStatus": "closed",
        "uri": "tcp://127.0.0.1:9092",
        "sources": [
            {
                "addresses": ["t"],
                "consumerCount": 1,
                "authorizationContext": ["a:b"],
                "headerMapping": {},
                "payloadMapping": [],
            }
        ],
        "targets": [],
        "clientCount": 1,
        "failoverEnabled": True,
        "validateCertificates": True,
        "processorPoolSize": 5,
        "tags": [],
    }


def test_special_fields_sent_back_from_a_get_are_not_part_of_the_definition() -> None:
    connection = connection_from_json(minimal(_revision=3, _created="x", _modified="y"), "c1")
    assert connection.extra == {}


def test_specific_config_scalars_become_strings_as_in_ditto() -> None:
    connection = connection_from_json(minimal(specificConfig={"a": True, "b": 3, "c": "x"}), "c1")
    assert dict(connection.specific_config) == {"a": "true", "b": "3", "c": "x"}


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("missing type", {"connectionStatus": "open", "uri": "tcp://h:1"}, "'connectionType' is missing"),
    ("unknown type", minimal(connectionType="mqtt-7"), "'mqtt-7' is unknown"),
    ("missing status", {"connectionType": "kafka", "uri": "tcp://h:1"}, "'connectionStatus' is missing"),
    ("bad status", minimal(connectionStatus="failed"), "'connectionStatus' must be one of"),
    ("missing uri", {"connectionType": "kafka", "connectionStatus": "open"}, "'uri' is missing"),
    ("uri without host", minimal(uri="tcp://"), "needs a scheme and a host"),
    ("uri bad port", minimal(uri="tcp://h:notaport"), "is not a valid URI"),
    ("source without addresses", minimal(sources=[{"authorizationContext": ["a"]}]), "sources[0].addresses"),
    ("source without auth", minimal(sources=[{"addresses": ["a"]}]), "sources[0].authorizationContext"),
    (
        "source empty auth",
        minimal(sources=[{"addresses": ["a"], "authorizationContext": []}]),
        "must not be empty",
    ),
    ("source qos", minimal(sources=[{"addresses": ["a"], "authorizationContext": ["s"], "qos": 3}]), "qos"),
    (
        "unknown payload mapping",
        minimal(sources=[{"addresses": ["a"], "authorizationContext": ["s"], "payloadMapping": ["nope"]}]),
        "references the mapping 'nope'",
    ),
    (
        "declared ack of another connection",
        minimal(sources=[{"addresses": ["a"], "authorizationContext": ["s"], "declaredAcks": ["other:ack"]}]),
        "must be prefixed by the connection id",
    ),
    (
        "target without address",
        minimal(targets=[{"topics": ["_/_/things/twin/events"], "authorizationContext": ["s"]}]),
        "targets[0].address",
    ),
    (
        "target without topics",
        minimal(targets=[{"address": "a", "authorizationContext": ["s"]}]),
        "targets[0].topics",
    ),
    (
        "unknown topic",
        minimal(
            targets=[{"address": "a", "topics": ["_/_/things/twin/commands"], "authorizationContext": ["s"]}]
        ),
        "unknown topic",
    ),
    (
        "bad rql filter",
        minimal(
            targets=[
                {
                    "address": "a",
                    "topics": ["_/_/things/twin/events?filter=eq(a"],
                    "authorizationContext": ["s"],
                }
            ]
        ),
        "invalid RQL filter",
    ),
    (
        "filter on live commands",
        minimal(
            targets=[
                {
                    "address": "a",
                    "topics": ["_/_/things/live/commands?filter=exists(a)"],
                    "authorizationContext": ["s"],
                }
            ]
        ),
        "does not support 'filter'",
    ),
    (
        "mapping without engine",
        minimal(mappingDefinitions={"m": {"options": {}}}),
        "mappingDefinitions.m.mappingEngine",
    ),
    ("id differs", minimal(id="other"), "'id' 'other' differs"),
    ("ca not pem", minimal(ca="not a certificate"), "'ca' must be PEM certificates"),
    ("credentials not an object", minimal(credentials="x"), "'credentials' must be a JSON object"),
    (
        "client-cert without cert",
        minimal(credentials={"type": "client-cert", "key": "-----BEGIN PRIVATE KEY-----"}),
        "'credentials.cert'",
    ),
    (
        "client-cert with a PKCS1 key",
        minimal(
            credentials={
                "type": "client-cert",
                "cert": "-----BEGIN CERTIFICATE-----",
                "key": "-----BEGIN RSA PRIVATE KEY-----",
            }
        ),
        "'credentials.key' must be a PEM private key in PKCS8",
    ),
    (
        "oauth2 without secret",
        minimal(
            credentials={
                "type": "oauth-client-credentials",
                "tokenEndpoint": "https://auth.example.com/token",
                "clientId": "c",
                "requestedScopes": "s",
            }
        ),
        "'credentials.clientSecret' is missing",
    ),
    (
        "oauth2 password flow without password",
        minimal(
            credentials={
                "type": "oauth-password",
                "tokenEndpoint": "https://auth.example.com/token",
                "clientId": "c",
                "requestedScopes": "s",
                "username": "u",
            }
        ),
        "'credentials.password' is missing",
    ),
    (
        "oauth2 token endpoint not a URL",
        minimal(
            credentials={
                "type": "oauth-client-credentials",
                "tokenEndpoint": "auth.example.com",
                "clientId": "c",
                "clientSecret": "x",
                "requestedScopes": "s",
            }
        ),
        "'credentials.tokenEndpoint' must be an http(s) URL",
    ),
    (
        "hmac of an unknown algorithm",
        minimal(credentials={"type": "hmac", "algorithm": "md5", "parameters": {}}),
        "'credentials.algorithm' must be one of",
    ),
    (
        "aws signing without its secret key",
        minimal(
            credentials={
                "type": "hmac",
                "algorithm": "aws4-hmac-sha256",
                "parameters": {"region": "r", "service": "s", "accessKey": "a"},
            }
        ),
        "'credentials.parameters.secretKey' is missing",
    ),
]


@pytest.mark.parametrize(
    ("doc", "expected"), [(d, e) for _n, d, e in INVALID], ids=[n for n, _d, _e in INVALID]
)
def test_invalid_definitions_are_refused_with_a_description(doc: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConnectionConfigurationInvalid) as caught:
        connection_from_json(doc, "c1")
    assert caught.value.status == 400
    assert caught.value.error_code == "connectivity:connection.configuration.invalid"
    assert expected in caught.value.message


def test_a_uri_scheme_of_another_type_is_refused() -> None:
    with pytest.raises(ConnectionConfigurationInvalid) as caught:
        connection_from_json(minimal(connectionType="amqp-091", uri="tcp://h:5672"), "c1")
    assert caught.value.message == "The URI scheme 'tcp' is not valid for amqp-091."


@pytest.mark.parametrize("connection_id", ["", "with space", "dot.ted", "x" * 101, "slash/ed"])
def test_connection_ids_follow_dittos_pattern(connection_id: str) -> None:
    with pytest.raises(ConnectionIdInvalid) as caught:
        connection_from_json(minimal(), connection_id)
    assert caught.value.error_code == "connectivity:connection.id.invalid"


def test_good_ids_pass() -> None:
    for connection_id in ("a", "0b1c-uuid_x:y", "x" * 100):
        assert connection_from_json(minimal(), connection_id).id == connection_id


def test_the_definition_must_be_an_object() -> None:
    with pytest.raises(DittoError):
        connection_from_json([1], "c1")
