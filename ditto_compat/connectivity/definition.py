"""A connection definition as JSON (``basic-connections``, jsonschema ``connection.json``) to and from the
:mod:`~ditto_compat.connectivity.model`, validated as Ditto's ``ConnectionValidator`` does.

Every failure is a 400 ``connectivity:connection.configuration.invalid`` whose description names the offending
field (``sources[0].authorizationContext``), except a malformed connection id (``connection.id.invalid``).
Keys this server does not interpret (``credentials``, ``ca``, ``sshTunnel``, options of newer Ditto versions)
are kept in the model's ``extra`` and rendered back unchanged, so that GET returns what was PUT. Passwords in
``uri`` are returned as sent, as Ditto does without its (optional) encryption of sensitive fields.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from ditto_compat.connectivity.errors import ConnectionConfigurationInvalid, ConnectionIdInvalid
from ditto_compat.connectivity.model import (
    BUILTIN_MAPPERS,
    CONNECTION_STATUSES,
    CONNECTION_TYPES,
    Connection,
    Enforcement,
    MappingDefinition,
    ReplyTarget,
    Source,
    Target,
    TargetTopic,
)
from ditto_compat.errors import DittoError
from ditto_compat.model.fields import parse_fields
from ditto_compat.rql.parser import parse_rql

CONNECTION_ID: Final = re.compile(r"[a-zA-Z0-9\-_:]{1,100}")
# Keys the server computes; a client may send them back from a GET, they are not part of the definition.
SPECIAL_FIELDS: Final = ("_revision", "_created", "_modified")
# connectionType -> URI schemes its client accepts (Ditto's per-type validators).
URI_SCHEMES: Final[Mapping[str, tuple[str, ...]]] = {
    "amqp-091": ("amqp", "amqps"),
    "amqp-10": ("amqp", "amqps"),
    "mqtt": ("tcp", "ssl", "ws", "wss"),
    "mqtt-5": ("tcp", "ssl", "ws", "wss"),
    "kafka": ("tcp", "ssl"),
    "http-push": ("http", "https"),
    "hono": ("tcp", "ssl", "amqp", "amqps", "http", "https"),
}
# topic path -> (model kind, namespaces allowed, filter allowed, extraFields allowed); ``basic-connections``
# "Target topics and filtering" and "Target topics and enrichment".
TOPICS: Final[Mapping[str, tuple[str, bool, bool, bool]]] = {
    "_/_/things/twin/events": ("twin/events", True, True, True),
    "_/_/things/live/messages": ("live/messages", True, True, True),
    "_/_/things/live/commands": ("live/commands", True, False, True),
    "_/_/things/live/events": ("live/events", True, True, True),
    "_/_/policies/announcements": ("policies/announcements", True, False, False),
    "_/_/connections/announcements": ("connections/announcements", False, False, False),
}
RESPONSE_TYPES: Final = ("response", "error", "nack")
ACK_LABEL: Final = re.compile(r"[a-zA-Z0-9\-_:]{3,100}")
CONNECTION_ID_PLACEHOLDER: Final = re.compile(r"^\{\{\s*connection:id\s*\}\}:")

_CONNECTION_KEYS: Final = (
    "id",
    "name",
    "connectionType",
    "connectionStatus",
    "uri",
    "sources",
    "targets",
    "clientCount",
    "failoverEnabled",
    "validateCertificates",
    "processorPoolSize",
    "specificConfig",
    "mappingDefinitions",
    "tags",
)
_SOURCE_KEYS: Final = (
    "addresses",
    "consumerCount",
    "qos",
    "authorizationContext",
    "enforcement",
    "acknowledgementRequests",
    "declaredAcks",
    "headerMapping",
    "payloadMapping",
    "replyTarget",
)
_TARGET_KEYS: Final = (
    "address",
    "topics",
    "qos",
    "authorizationContext",
    "issuedAcknowledgementLabel",
    "headerMapping",
    "payloadMapping",
)
_MAPPING_KEYS: Final = ("mappingEngine", "options", "incomingConditions", "outgoingConditions")
_REPLY_TARGET_KEYS: Final = ("enabled", "address", "headerMapping", "expectedResponseTypes")
_ENFORCEMENT_KEYS: Final = ("input", "filters")


def invalid(field: str, problem: str) -> ConnectionConfigurationInvalid:
    return ConnectionConfigurationInvalid(
        f"The connection configuration is invalid: '{field}' {problem}.",
        "Make sure all required properties are set and valid in the configuration.",
    )


def check_connection_id(connection_id: str) -> str:
    if not CONNECTION_ID.fullmatch(connection_id):
        raise ConnectionIdInvalid.of(connection_id)
    return connection_id


# ------------------------------------------------------------------------------------------- field readers


def _extra(doc: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in known and k not in SPECIAL_FIELDS}


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise invalid(field, "must be a JSON object")
    return value


def _string(value: Any, field: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise invalid(field, "must be a non-empty string" if not empty else "must be a string")
    return value


def _optional_string(doc: Mapping[str, Any], key: str, field: str) -> str | None:
    value = doc.get(key)
    return None if value is None else _string(value, field)


def _boolean(doc: Mapping[str, Any], key: str, field: str, default: bool) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise invalid(field, "must be a boolean")
    return value


def _integer(
    doc: Mapping[str, Any], key: str, field: str, default: int | None, low: int, high: int
) -> int | None:
    value = doc.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(field, f"must be an integer between {low} and {high}")
    return value


def _strings(value: Any, field: str, *, required: bool = False) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(field, "must be an array of strings")
    if required and not value:
        raise invalid(field, "must not be empty")
    return tuple(value)


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    obj = _object(value, field)
    if not all(isinstance(v, str) for v in obj.values()):
        raise invalid(field, "must map names to strings")
    return dict(obj)


def _specific_config(value: Any) -> dict[str, str]:
    """Ditto keeps ``specificConfig`` as a map of strings; other JSON scalars become their JSON text."""
    if value is None:
        return {}
    obj = _object(value, "specificConfig")
    out: dict[str, str] = {}
    for key, item in obj.items():
        if isinstance(item, str):
            out[key] = item
        elif isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, int | float):
            out[key] = str(item)
        else:
            raise invalid(f"specificConfig.{key}", "must be a string, number or boolean")
    return out


# ------------------------------------------------------------------------------------------- parts


def _uri(doc: Mapping[str, Any], connection_type: str) -> str:
    if "uri" not in doc:
        raise invalid("uri", "is missing")
    uri = _string(doc["uri"], "uri", empty=False)
    try:
        parts = urlsplit(uri)
        _ = parts.port  # read only to reject a malformed port
    except ValueError:
        raise invalid("uri", f"<{uri}> is not a valid URI") from None
    if not parts.scheme or not parts.hostname:
        raise invalid("uri", f"<{uri}> is not a valid URI: it needs a scheme and a host")
    schemes = URI_SCHEMES.get(connection_type, ())
    if parts.scheme.lower() not in schemes:
        raise ConnectionConfigurationInvalid(
            f"The URI scheme '{parts.scheme}' is not valid for {connection_type}.",
            f"Accepted URI schemes are: {', '.join(schemes)}",
        )
    return uri


def _mapping_definitions(value: Any) -> dict[str, MappingDefinition]:
    if value is None:
        return {}
    out: dict[str, MappingDefinition] = {}
    for mapping_id, raw in _object(value, "mappingDefinitions").items():
        field = f"mappingDefinitions.{mapping_id}"
        if not mapping_id:
            raise invalid("mappingDefinitions", "must not have an empty id")
        entry = _object(raw, field)
        if "mappingEngine" not in entry:
            raise invalid(f"{field}.mappingEngine", "is missing")
        out[mapping_id] = MappingDefinition(
            mapping_engine=_string(entry["mappingEngine"], f"{field}.mappingEngine", empty=False),
            options=dict(_object(entry.get("options", {}), f"{field}.options")),
            incoming_conditions=_string_map(entry.get("incomingConditions"), f"{field}.incomingConditions"),
            outgoing_conditions=_string_map(entry.get("outgoingConditions"), f"{field}.outgoingConditions"),
            extra=_extra(entry, _MAPPING_KEYS),
        )
    return out


def _payload_mapping(value: Any, field: str, definitions: Mapping[str, MappingDefinition]) -> tuple[str, ...]:
    ids = _strings(value, field)
    for mapping_id in ids:
        if mapping_id not in definitions and mapping_id not in BUILTIN_MAPPERS:
            raise invalid(
                field,
                f"references the mapping '{mapping_id}', which is neither in 'mappingDefinitions' nor a "
                f"built-in mapper ({', '.join(BUILTIN_MAPPERS)})",
            )
    return ids


def _ack_label(label: str, field: str, connection_id: str) -> None:
    resolved = CONNECTION_ID_PLACEHOLDER.sub(f"{connection_id}:", label)
    if not ACK_LABEL.fullmatch(resolved):
        raise invalid(field, f"'{label}' is not a valid acknowledgement label ({ACK_LABEL.pattern})")
    if not resolved.startswith(f"{connection_id}:"):
        raise invalid(
            field,
            f"'{label}' must be prefixed by the connection id '{connection_id}:' or '{{{{connection:id}}}}:'",
        )


def _enforcement(value: Any, field: str) -> Enforcement | None:
    if value is None:
        return None
    doc = _object(value, field)
    if "input" not in doc:
        raise invalid(f"{field}.input", "is missing")
    return Enforcement(
        input=_string(doc["input"], f"{field}.input", empty=False),
        filters=_strings(doc.get("filters"), f"{field}.filters", required=True),
        extra=_extra(doc, _ENFORCEMENT_KEYS),
    )


def _reply_target(value: Any, field: str) -> ReplyTarget | None:
    if value is None:
        return None
    doc = _object(value, field)
    types = _strings(
        doc.get("expectedResponseTypes", ["response", "error"]), f"{field}.expectedResponseTypes"
    )
    unknown = [t for t in types if t not in RESPONSE_TYPES]
    if unknown:
        raise invalid(
            f"{field}.expectedResponseTypes", f"has unknown types {unknown}; use {list(RESPONSE_TYPES)}"
        )
    enabled = _boolean(doc, "enabled", f"{field}.enabled", True)
    address = _optional_string(doc, "address", f"{field}.address")
    if enabled and not address:
        raise invalid(f"{field}.address", "is required when the reply target is enabled")
    return ReplyTarget(
        enabled=enabled,
        address=address,
        header_mapping=_string_map(doc.get("headerMapping"), f"{field}.headerMapping"),
        expected_response_types=types,
        extra=_extra(doc, _REPLY_TARGET_KEYS),
    )


def _source(
    value: Any, index: int, connection_id: str, definitions: Mapping[str, MappingDefinition]
) -> Source:
    field = f"sources[{index}]"
    doc = _object(value, field)
    if "addresses" not in doc:
        raise invalid(f"{field}.addresses", "is missing")
    if "authorizationContext" not in doc:
        raise invalid(f"{field}.authorizationContext", "is missing")
    acks = _strings(doc.get("declaredAcks"), f"{field}.declaredAcks")
    for label in acks:
        _ack_label(label, f"{field}.declaredAcks", connection_id)
    requests = doc.get("acknowledgementRequests")
    return Source(
        addresses=_strings(doc["addresses"], f"{field}.addresses", required=True),
        authorization_context=_strings(
            doc["authorizationContext"], f"{field}.authorizationContext", required=True
        ),
        index=index,
        consumer_count=_integer(doc, "consumerCount", f"{field}.consumerCount", 1, 1, 1000) or 1,
        qos=_integer(doc, "qos", f"{field}.qos", None, 0, 2),
        enforcement=_enforcement(doc.get("enforcement"), f"{field}.enforcement"),
        header_mapping=_string_map(doc.get("headerMapping"), f"{field}.headerMapping"),
        payload_mapping=_payload_mapping(doc.get("payloadMapping"), f"{field}.payloadMapping", definitions),
        reply_target=_reply_target(doc.get("replyTarget"), f"{field}.replyTarget"),
        declared_acks=acks,
        acknowledgement_requests=(
            None if requests is None else dict(_object(requests, f"{field}.acknowledgementRequests"))
        ),
        extra=_extra(doc, _SOURCE_KEYS),
    )


def parse_topic(raw: str, field: str) -> TargetTopic:
    """``_/_/things/twin/events?namespaces=a,b&filter=<rql>&extraFields=<selector>`` (parameters URL-encoded)."""
    path, _, query = raw.partition("?")
    spec = TOPICS.get(path)
    if spec is None:
        raise invalid(field, f"has the unknown topic '{path}'; use one of {list(TOPICS)}")
    kind, namespaces_ok, filter_ok, extra_ok = spec
    params = dict(parse_qsl(query, keep_blank_values=True))
    namespaces = params.get("namespaces")
    rql = params.get("filter")
    extra_fields = params.get("extraFields")
    if namespaces is not None and not namespaces_ok:
        raise invalid(field, f"'{path}' does not support 'namespaces'")
    if rql is not None:
        if not filter_ok:
            raise invalid(field, f"'{path}' does not support 'filter'")
        try:
            parse_rql(rql)
        except DittoError as error:
            raise invalid(field, f"has an invalid RQL filter: {error.message}") from None
    if extra_fields is not None:
        if not extra_ok:
            raise invalid(field, f"'{path}' does not support 'extraFields'")
        try:
            parse_fields(extra_fields)
        except DittoError as error:
            raise invalid(field, f"has invalid extraFields: {error.message}") from None
    return TargetTopic(
        kind=kind,
        namespaces=(
            None
            if namespaces is None
            else frozenset(ns.strip() for ns in namespaces.split(",") if ns.strip())
        ),
        filter=rql,
        extra_fields=extra_fields,
        raw=raw,
    )


def _target(
    value: Any, index: int, connection_id: str, definitions: Mapping[str, MappingDefinition]
) -> Target:
    field = f"targets[{index}]"
    doc = _object(value, field)
    if "address" not in doc:
        raise invalid(f"{field}.address", "is missing")
    if "authorizationContext" not in doc:
        raise invalid(f"{field}.authorizationContext", "is missing")
    raw_topics = _strings(doc.get("topics"), f"{field}.topics", required=True)
    label = _optional_string(doc, "issuedAcknowledgementLabel", f"{field}.issuedAcknowledgementLabel")
    if label is not None:
        _ack_label(label, f"{field}.issuedAcknowledgementLabel", connection_id)
    return Target(
        address=_string(doc["address"], f"{field}.address"),
        topics=tuple(parse_topic(t, f"{field}.topics[{i}]") for i, t in enumerate(raw_topics)),
        authorization_context=_strings(
            doc["authorizationContext"], f"{field}.authorizationContext", required=True
        ),
        index=index,
        qos=_integer(doc, "qos", f"{field}.qos", None, 0, 2),
        header_mapping=_string_map(doc.get("headerMapping"), f"{field}.headerMapping"),
        payload_mapping=_payload_mapping(doc.get("payloadMapping"), f"{field}.payloadMapping", definitions),
        issued_acknowledgement_label=label,
        extra=_extra(doc, _TARGET_KEYS),
    )


# ------------------------------------------------------------------------------------------- entry points


def connection_from_json(doc: Any, connection_id: str) -> Connection:
    """Parse and validate a definition; ``connection_id`` wins over (and must equal) an ``id`` in ``doc``."""
    check_connection_id(connection_id)
    body = _object(doc, "connection")
    if "id" in body and body["id"] != connection_id:
        raise invalid("id", f"'{body['id']}' differs from the connection id '{connection_id}'")
    if "connectionType" not in body:
        raise invalid("connectionType", "is missing")
    connection_type = _string(body["connectionType"], "connectionType")
    if connection_type not in CONNECTION_TYPES:
        raise invalid(
            "connectionType", f"'{connection_type}' is unknown; use one of {list(CONNECTION_TYPES)}"
        )
    if "connectionStatus" not in body:
        raise invalid("connectionStatus", "is missing")
    status = body["connectionStatus"]
    if status not in CONNECTION_STATUSES:
        raise invalid("connectionStatus", f"must be one of {list(CONNECTION_STATUSES)}")
    definitions = _mapping_definitions(body.get("mappingDefinitions"))
    sources = body.get("sources", [])
    targets = body.get("targets", [])
    if not isinstance(sources, list):
        raise invalid("sources", "must be an array")
    if not isinstance(targets, list):
        raise invalid("targets", "must be an array")
    _check_certificates(body)
    return Connection(
        id=connection_id,
        connection_type=connection_type,
        connection_status=status,
        uri=_uri(body, connection_type),
        name=_optional_string(body, "name", "name"),
        sources=tuple(_source(s, i, connection_id, definitions) for i, s in enumerate(sources)),
        targets=tuple(_target(t, i, connection_id, definitions) for i, t in enumerate(targets)),
        specific_config=_specific_config(body.get("specificConfig")),
        mapping_definitions=definitions,
        client_count=_integer(body, "clientCount", "clientCount", 1, 1, 64) or 1,
        failover_enabled=_boolean(body, "failoverEnabled", "failoverEnabled", True),
        validate_certificates=_boolean(body, "validateCertificates", "validateCertificates", True),
        processor_pool_size=_integer(body, "processorPoolSize", "processorPoolSize", 5, 1, 100) or 5,
        tags=_strings(body.get("tags"), "tags"),
        extra=_extra(body, _CONNECTION_KEYS),
    )


_CERTIFICATE_PEM: Final = "-----BEGIN CERTIFICATE-----"
_PKCS8_PEM: Final = "-----BEGIN PRIVATE KEY-----"


def _check_certificates(body: Mapping[str, Any]) -> None:
    """``ca`` and ``client-cert`` credentials as ``connectivity-tls-certificates`` wants them (PEM; the key in
    PKCS8, as Ditto refuses PKCS1 keys); whether they can be used together shows when the connection opens."""
    ca = body.get("ca")
    if ca is not None and (not isinstance(ca, str) or _CERTIFICATE_PEM not in ca):
        raise invalid("ca", "must be PEM certificates ('-----BEGIN CERTIFICATE-----')")
    credentials = body.get("credentials")
    if credentials is None:
        return
    if not isinstance(credentials, Mapping):
        raise invalid("credentials", "must be a JSON object")
    kind = credentials.get("type")
    if kind in ("oauth-client-credentials", "oauth-password"):
        required = ["tokenEndpoint", "clientId", "requestedScopes"]
        required += ["clientSecret"] if kind == "oauth-client-credentials" else ["username", "password"]
        for name in required:
            if not isinstance(credentials.get(name), str) or not credentials[name]:
                raise invalid(f"credentials.{name}", "is missing")
        if urlsplit(credentials["tokenEndpoint"]).scheme.lower() not in ("http", "https"):
            raise invalid("credentials.tokenEndpoint", "must be an http(s) URL")
        return
    if kind == "hmac":
        _check_hmac(credentials)
        return
    if kind != "client-cert":
        return  # kept as sent (e.g. the plain credentials of AMQP 1.0, a type this server does not open)
    cert, key = credentials.get("cert"), credentials.get("key")
    if not isinstance(cert, str) or _CERTIFICATE_PEM not in cert:
        raise invalid("credentials.cert", "must be a PEM certificate ('-----BEGIN CERTIFICATE-----')")
    if not isinstance(key, str) or not key.lstrip().startswith(_PKCS8_PEM):
        raise invalid(
            "credentials.key",
            "must be a PEM private key in PKCS8 ('-----BEGIN PRIVATE KEY-----'); convert a PKCS1 key with "
            "'openssl pkcs8 -topk8 -nocrypt'",
        )


# connectivity-hmac-signing: the parameters each algorithm needs
_HMAC_PARAMETERS: Final = {
    "aws4-hmac-sha256": ("region", "service", "accessKey", "secretKey"),
    "az-monitor-2016-04-01": ("workspaceId", "sharedKey"),
    "az-sasl": ("sharedKeyName", "sharedKey", "endpoint"),
}


def _check_hmac(credentials: Mapping[str, Any]) -> None:
    algorithm = credentials.get("algorithm")
    if algorithm not in _HMAC_PARAMETERS:
        raise invalid("credentials.algorithm", f"must be one of {list(_HMAC_PARAMETERS)}")
    parameters = credentials.get("parameters")
    if not isinstance(parameters, Mapping):
        raise invalid("credentials.parameters", "must be a JSON object")
    for name in _HMAC_PARAMETERS[algorithm]:
        if not isinstance(parameters.get(name), str) or not parameters[name]:
            raise invalid(f"credentials.parameters.{name}", "is missing")
    content_sha256 = parameters.get("xAmzContentSha256", "EXCLUDED")
    if str(content_sha256).upper() not in ("EXCLUDED", "INCLUDED", "UNSIGNED"):
        raise invalid("credentials.parameters.xAmzContentSha256", "must be INCLUDED, EXCLUDED or UNSIGNED")


def _put_if(out: dict[str, Any], key: str, value: Any) -> None:
    if value:
        out[key] = value


def _enforcement_json(enforcement: Enforcement) -> dict[str, Any]:
    return {"input": enforcement.input, "filters": list(enforcement.filters), **enforcement.extra}


def _reply_target_json(reply: ReplyTarget) -> dict[str, Any]:
    out: dict[str, Any] = {"enabled": reply.enabled}
    if reply.address is not None:
        out["address"] = reply.address
    out["headerMapping"] = dict(reply.header_mapping)
    out["expectedResponseTypes"] = list(reply.expected_response_types)
    return {**out, **reply.extra}


def _source_json(source: Source) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": list(source.addresses), "consumerCount": source.consumer_count}
    if source.qos is not None:
        out["qos"] = source.qos
    out["authorizationContext"] = list(source.authorization_context)
    if source.enforcement is not None:
        out["enforcement"] = _enforcement_json(source.enforcement)
    if source.acknowledgement_requests is not None:
        out["acknowledgementRequests"] = dict(source.acknowledgement_requests)
    _put_if(out, "declaredAcks", list(source.declared_acks))
    out["headerMapping"] = dict(source.header_mapping)
    out["payloadMapping"] = list(source.payload_mapping)
    if source.reply_target is not None:
        out["replyTarget"] = _reply_target_json(source.reply_target)
    return {**out, **source.extra}


def _target_json(target: Target) -> dict[str, Any]:
    out: dict[str, Any] = {"address": target.address, "topics": [t.raw for t in target.topics]}
    if target.qos is not None:
        out["qos"] = target.qos
    out["authorizationContext"] = list(target.authorization_context)
    if target.issued_acknowledgement_label is not None:
        out["issuedAcknowledgementLabel"] = target.issued_acknowledgement_label
    out["headerMapping"] = dict(target.header_mapping)
    out["payloadMapping"] = list(target.payload_mapping)
    return {**out, **target.extra}


def _mapping_json(definition: MappingDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"mappingEngine": definition.mapping_engine, "options": dict(definition.options)}
    _put_if(out, "incomingConditions", dict(definition.incoming_conditions))
    _put_if(out, "outgoingConditions", dict(definition.outgoing_conditions))
    return {**out, **definition.extra}


def connection_to_json(connection: Connection) -> dict[str, Any]:
    """The definition as Ditto renders it: what was sent, with the defaults Ditto fills in made explicit."""
    out: dict[str, Any] = {"id": connection.id}
    if connection.name is not None:
        out["name"] = connection.name
    out.update(
        {
            "connectionType": connection.connection_type,
            "connectionStatus": connection.connection_status,
            "uri": connection.uri,
            "sources": [_source_json(s) for s in connection.sources],
            "targets": [_target_json(t) for t in connection.targets],
            "clientCount": connection.client_count,
            "failoverEnabled": connection.failover_enabled,
            "validateCertificates": connection.validate_certificates,
            "processorPoolSize": connection.processor_pool_size,
        }
    )
    _put_if(out, "specificConfig", dict(connection.specific_config))
    _put_if(
        out,
        "mappingDefinitions",
        {k: _mapping_json(v) for k, v in connection.mapping_definitions.items()},
    )
    out["tags"] = list(connection.tags)
    return {**out, **connection.extra}
