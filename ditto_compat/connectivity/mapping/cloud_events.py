"""The ``CloudEvents`` mapper (``connectivity-mapping`` "CloudEvents mapper"): Ditto Protocol messages carried as
CloudEvents 1.0, inbound and outbound, as Ditto's ``CloudEventsMapper`` maps them.

Inbound, by the message's ``content-type``:

- ``application/vnd.eclipse.ditto+json``: a *binary* CloudEvent, whose attributes are the headers ``ce-id``,
  ``ce-source``, ``ce-type`` and ``ce-specversion`` (all required) and whose payload is the Ditto Protocol
  message;
- ``application/cloudevents+json``: a *structured* CloudEvent, a JSON object with ``specversion``, ``id``,
  ``source`` and ``type`` (all required) whose ``data`` is the Ditto Protocol message, or whose ``data_base64``
  is that message's JSON in Base64;
- any other content type: nothing (the message is dropped), as in Ditto.

A message of either content type that is not such a CloudEvent fails with ``connectivity:message.mapping.failed``
("This is not a CloudEvent"). As with the Ditto mapper, the envelope keeps the headers its Ditto Protocol message
carries (none when it has no ``headers``, as in the doc's examples).

Outbound, each signal becomes a structured CloudEvent, ``{"data": <Ditto Protocol message>, "specversion": "1.0",
"id": <a new UUID>, "source": "org.eclipse.ditto", "type": "org.eclipse.ditto.outbound"}``, with the only header
``content-type: application/cloudevents+json``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any, Final

import orjson

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.errors import mapping_failed
from ditto_compat.errors import DittoError
from ditto_compat.protocol.envelope import Envelope, parse_envelope

BINARY_CONTENT_TYPE: Final = "application/vnd.eclipse.ditto+json"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
_BINARY_ATTRIBUTES: Final = ("ce-id", "ce-source", "ce-type", "ce-specversion")
_STRUCTURED_ATTRIBUTES: Final = ("specversion", "id", "source", "type")
_NOT_A_CLOUD_EVENT: Final = "This is not a CloudEvent"


class CloudEventsMapper:
    alias = "CloudEvents"

    def map_incoming(self, message: ExternalMessage) -> list[Envelope]:
        content_type = message.content_type
        if content_type == BINARY_CONTENT_TYPE:
            if any(message.header(name) is None for name in _BINARY_ATTRIBUTES):
                raise mapping_failed(_NOT_A_CLOUD_EVENT, content_type=content_type)
            return [_envelope(_payload_text(message), content_type)]
        if content_type == STRUCTURED_CONTENT_TYPE:
            event = _json_object(_payload_text(message), content_type)
            if any(name not in event for name in _STRUCTURED_ATTRIBUTES):
                raise mapping_failed(_NOT_A_CLOUD_EVENT, content_type=content_type)
            return [_envelope(_data_text(event, content_type), content_type)]
        return []

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]:
        event = {
            "data": envelope.to_json(),
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "org.eclipse.ditto",
            "type": "org.eclipse.ditto.outbound",
        }
        return [
            ExternalMessage(
                headers={"content-type": STRUCTURED_CONTENT_TYPE}, text=orjson.dumps(event).decode()
            )
        ]


def _payload_text(message: ExternalMessage) -> str:
    text = message.text_payload
    if text is None:
        raise mapping_failed("The CloudEvent is not UTF-8 text.", content_type=message.content_type)
    return text


def _json_object(text: str, content_type: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise mapping_failed("The payload is not JSON.", content_type=content_type) from None
    if not isinstance(value, dict):
        raise mapping_failed("The payload is not a JSON object.", content_type=content_type)
    return value


def _data_text(event: dict[str, Any], content_type: str) -> str:
    """The Ditto Protocol message of a structured CloudEvent, as JSON text (``data_base64`` wins, as in Ditto)."""
    if "data_base64" in event:
        encoded = event["data_base64"]
        if not isinstance(encoded, str):
            raise mapping_failed(
                "'data_base64' of the CloudEvent is not a string.", content_type=content_type
            )
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise mapping_failed(
                "'data_base64' of the CloudEvent is not Base64 of UTF-8 text.", content_type=content_type
            ) from None
    if "data" in event:
        return orjson.dumps(event["data"]).decode()
    raise mapping_failed(_NOT_A_CLOUD_EVENT, content_type=content_type)


def _envelope(text: str, content_type: str) -> Envelope:
    message = _json_object(text, content_type)
    if (
        message.get("headers") is None
    ):  # Ditto's protocol adapter reads missing headers as empty (the doc's examples)
        message = {**message, "headers": {}}
    try:
        return parse_envelope(message)
    except DittoError as error:
        raise mapping_failed(
            f"The CloudEvent's data is not a valid Ditto Protocol message: {error.message}",
            content_type=content_type,
        ) from None
