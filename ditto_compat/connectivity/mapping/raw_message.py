"""The ``RawMessage`` mapper (``connectivity-mapping`` "RawMessage mapper", Ditto's ``RawMessageMapper``): the
payload of a live message (or message response) travels as it is.

Inbound, a message with ``content-type: application/vnd.eclipse.ditto+json`` is a Ditto Protocol message (the
Ditto mapper's behaviour). Any other becomes a message command built from ``incomingMessageHeaders`` (templates
over the external headers): ``ditto-message-thing-id`` and ``ditto-message-subject`` name the Thing and the
subject (both required), ``ditto-message-direction`` ``TO`` (inbox, default) or ``FROM`` (outbox),
``ditto-message-feature-id`` a feature, ``status`` makes it a response, ``content-type`` decides how the payload
becomes the value: JSON content types are parsed, ``text/*`` stays text, anything else is base64 encoded (the
Ditto Protocol's form of binary message payloads).

Outbound, a live message becomes its payload (the reverse of the above; ``outgoingContentType`` is the
fallback content type) with the ``ditto-message-*`` and ``status`` headers; any other signal is mapped by the
Ditto mapper, as in Ditto.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.common import (
    DITTO_CONTENT_TYPE,
    compile_option,
    envelope_from_payload,
    envelope_to_message,
    external_headers,
    header_text,
    inbound_source,
    is_json_content_type,
    is_text_content_type,
    option_object,
    option_str,
)
from ditto_compat.connectivity.mapping.errors import mapping_failed
from ditto_compat.connectivity.placeholders import Template
from ditto_compat.model.ids import is_valid_entity_id
from ditto_compat.model.pointer import MISSING
from ditto_compat.protocol.envelope import Envelope, Topic

SUBJECT = "ditto-message-subject"
THING_ID = "ditto-message-thing-id"
DIRECTION = "ditto-message-direction"
FEATURE_ID = "ditto-message-feature-id"
_MESSAGE_HEADERS = (SUBJECT, THING_ID, DIRECTION, FEATURE_ID)

DEFAULT_INCOMING_HEADERS = {
    "content-type": "{{ header:content-type | fn:default('application/octet-stream') }}",
    SUBJECT: "{{ header:ditto-message-subject }}",
    THING_ID: "{{ header:ditto-message-thing-id }}",
    DIRECTION: "TO",
    FEATURE_ID: "{{ header:ditto-message-feature-id }}",
    "status": "{{ header:status }}",
}
DEFAULT_OUTGOING_CONTENT_TYPE = "text/plain; charset=UTF-8"


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def payload_value(message: ExternalMessage, content_type: str) -> Any:
    if is_json_content_type(content_type):
        text = message.text_payload
        if text is None:
            raise mapping_failed("The payload is not UTF-8 text.", content_type=content_type)
        if not text.strip():
            return MISSING
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            raise mapping_failed("The payload is not valid JSON.", content_type=content_type) from None
    if is_text_content_type(content_type):
        text = message.text_payload
        if text is None:
            raise mapping_failed("The payload is not UTF-8 text.", content_type=content_type)
        return text
    data = message.bytes_payload
    return MISSING if data is None else base64.b64encode(data).decode("ascii")


class RawMessageMapper:
    alias = "RawMessage"

    def __init__(self, options: Mapping[str, Any], *, connection_id: str) -> None:
        self.connection_id = connection_id
        self.outgoing_content_type = (
            option_str(options, "outgoingContentType") or DEFAULT_OUTGOING_CONTENT_TYPE
        )
        configured = option_object(options, "incomingMessageHeaders")
        templates = dict(DEFAULT_INCOMING_HEADERS)
        if configured is not None:
            templates.update({key: header_text(value) for key, value in configured.items()})
        self.incoming_headers: dict[str, Template] = {
            key: compile_option(text, f"incomingMessageHeaders/{key}") for key, text in templates.items()
        }

    def map_incoming(self, message: ExternalMessage) -> list[Envelope]:
        if _base_type(message.content_type) == DITTO_CONTENT_TYPE:
            return [envelope_from_payload(message)]
        source = inbound_source(message, self.connection_id)
        resolved: dict[str, str] = {}
        for key, template in self.incoming_headers.items():
            value = template.resolve(source)
            if value is not None:
                resolved[key] = value
        thing_id = resolved.get(THING_ID)
        subject = resolved.get(SUBJECT)
        if not thing_id or not is_valid_entity_id(thing_id):
            raise mapping_failed(f"The header '{THING_ID}' is missing or not a valid Thing ID.")
        if not subject:
            raise mapping_failed(f"The header '{SUBJECT}' is missing.")
        box = "outbox" if resolved.get(DIRECTION, "TO").upper() == "FROM" else "inbox"
        feature_id = resolved.get(FEATURE_ID)
        path = f"/{box}/messages/{subject}"
        if feature_id:
            path = f"/features/{feature_id}{path}"
        status: int | None = None
        if "status" in resolved:
            try:
                status = int(resolved["status"])
            except ValueError:
                raise mapping_failed(f"The status '{resolved['status']}' is not a number.") from None
        content_type = resolved.get("content-type", "application/octet-stream")
        headers: dict[str, Any] = {
            k: v for k, v in resolved.items() if k not in _MESSAGE_HEADERS and k != "status"
        }
        headers["content-type"] = content_type
        correlation_id = message.header("correlation-id")
        if correlation_id is not None and "correlation-id" not in headers:
            headers["correlation-id"] = correlation_id
        namespace, _, name = thing_id.partition(":")
        topic = Topic(namespace, name, "things", "live", "messages", subject)
        value = payload_value(message, content_type)
        return [Envelope(topic=topic, headers=headers, path=path, value=value, status=status)]

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]:
        topic = envelope.topic
        if topic.group != "things" or topic.criterion != "messages":
            return [envelope_to_message(envelope)]
        headers = {k: v for k, v in external_headers(envelope.headers).items() if k.lower() != "content-type"}
        content_type = envelope.header("content-type")
        content_type = (
            content_type if isinstance(content_type, str) and content_type else self.outgoing_content_type
        )
        headers["content-type"] = content_type
        parts = [p for p in envelope.path.split("/") if p]
        headers[SUBJECT] = topic.action or ""
        headers[THING_ID] = topic.entity_id
        headers[DIRECTION] = "FROM" if "outbox" in parts else "TO"
        if len(parts) >= 2 and parts[0] == "features":
            headers[FEATURE_ID] = parts[1]
        if envelope.status is not None:
            headers["status"] = str(envelope.status)
        value = envelope.value
        out = ExternalMessage(headers=headers)
        if value is MISSING or value is None:
            out.payload = b""
        elif is_json_content_type(content_type):
            out.text = orjson.dumps(value).decode()
        elif is_text_content_type(content_type):
            out.text = value if isinstance(value, str) else orjson.dumps(value).decode()
        elif isinstance(value, str):
            try:
                out.payload = base64.b64decode(value, validate=True)
            except binascii.Error:
                out.payload = value.encode("utf-8")
        else:
            out.payload = orjson.dumps(value)
        return [out]
