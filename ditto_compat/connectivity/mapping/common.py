"""Helpers the built-in mappers share: reading options, header text, payload decoding, the placeholder source
of an inbound message (``connectivity-mapping``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.errors import MappingConfigurationInvalid, mapping_failed
from ditto_compat.connectivity.placeholders import PlaceholderSource, Template, compile_template
from ditto_compat.errors import DittoError
from ditto_compat.protocol.envelope import CONTENT_TYPE as DITTO_CONTENT_TYPE
from ditto_compat.protocol.envelope import Envelope, parse_envelope

__all__ = ["DITTO_CONTENT_TYPE"]

# the placeholders the mapping options of ImplicitThingCreation and UpdateTwinWithLiveResponse may use
INBOUND_OPTION_PREFIXES = frozenset({"header", "request", "time"})


def option_str(options: Mapping[str, Any], name: str, default: str | None = None) -> str | None:
    value = options.get(name, default)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    raise MappingConfigurationInvalid(f"The mapping option '{name}' must be a string.")


def option_bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    """Ditto reads options with ``Boolean.parseBoolean``: booleans or the strings 'true'/'false'."""
    value = options.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    raise MappingConfigurationInvalid(f"The mapping option '{name}' must be a boolean.")


def option_object(options: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        # Ditto accepts JSON objects given as strings, as the UI stores them
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise MappingConfigurationInvalid(f"The mapping option '{name}' must be a JSON object.") from None
    if not isinstance(value, dict):
        raise MappingConfigurationInvalid(f"The mapping option '{name}' must be a JSON object.")
    return value


def compile_option(text: str, name: str, allowed: frozenset[str] | None = None) -> Template:
    """A template from a mapping option; a bad placeholder makes the whole definition invalid."""
    try:
        return compile_template(text, allowed)
    except DittoError as error:
        raise MappingConfigurationInvalid(
            f"The mapping option '{name}' is invalid: {error.message}", error.description
        ) from None


def header_text(value: Any) -> str:
    """External headers are strings: Ditto headers that are JSON values are written in their JSON form."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def external_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    return {key: header_text(value) for key, value in headers.items()}


def inbound_source(message: ExternalMessage, connection_id: str) -> PlaceholderSource:
    """The placeholders of an inbound message: its headers, the source address, the connection, and
    ``request:subjectId`` when the inbound path put the authenticated subject into ``transport``."""
    subject = message.transport.get("request_subject")
    return PlaceholderSource(
        headers=message.headers,
        source_address=message.address or None,
        connection_id=connection_id,
        request_subject=subject if isinstance(subject, str) else None,
    )


def is_json_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    base = content_type.split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def is_text_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    base = content_type.split(";", 1)[0].strip().lower()
    return base.startswith("text/") or is_json_content_type(base)


def envelope_from_payload(message: ExternalMessage) -> Envelope:
    """The Ditto mapper's inbound step: the payload is one Ditto Protocol message."""
    text = message.text_payload
    if text is None:
        raise mapping_failed(
            "The message has no text payload: a Ditto Protocol message must be UTF-8 JSON.",
            content_type=message.content_type,
        )
    if not text.strip():
        raise mapping_failed("The message payload is empty.", content_type=message.content_type)
    try:
        return parse_envelope(text)
    except DittoError as error:
        raise mapping_failed(
            f"The payload is not a valid Ditto Protocol message: {error.message}",
            content_type=message.content_type,
        ) from None


def envelope_to_message(envelope: Envelope) -> ExternalMessage:
    """The Ditto mapper's outbound step: the Ditto Protocol JSON as text, the Ditto headers as external headers
    with ``content-type: application/vnd.eclipse.ditto+json``."""
    headers = {k: v for k, v in external_headers(envelope.headers).items() if k.lower() != "content-type"}
    headers["content-type"] = DITTO_CONTENT_TYPE
    return ExternalMessage(headers=headers, text=orjson.dumps(envelope.to_json()).decode())
