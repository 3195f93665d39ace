"""The ``ConnectionStatus`` mapper (``connectivity-mapping`` "ConnectionStatus mapper", Ditto's
``ConnectionStatusMessageMapper``): Eclipse Hono's ``creation-time`` (epoch millis) and ``ttd`` (seconds until
disconnect) headers become a modification of the Thing's ``ConnectionStatus`` feature:

- ``ttd = 0`` (the device disconnected): ``status/readyUntil`` = creation time (modifyFeatureProperty);
- ``ttd = -1`` (connected until further notice): the feature with ``readySince`` = creation time and
  ``readyUntil`` = ``9999-12-31T23:59:59Z``;
- ``ttd > 0``: ``readySince`` = creation time, ``readyUntil`` = creation time + ttd seconds.

Options: ``thingId`` (mandatory, may use ``{{ header:... }}``) and ``featureId`` (default ``ConnectionStatus``).
The commands ask for no response. As in Ditto, a message this mapper cannot use (headers missing or invalid,
an unresolvable thing id) is dropped rather than failed: the mapper usually runs beside another mapper that
handles the message's payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.common import compile_option, inbound_source, option_str
from ditto_compat.connectivity.mapping.errors import MappingConfigurationInvalid
from ditto_compat.connectivity.placeholders import contains_placeholder
from ditto_compat.model.ids import is_valid_entity_id
from ditto_compat.protocol.envelope import Envelope, Topic

FEATURE_DEFINITION = "org.eclipse.ditto:ConnectionStatus:1.0.0"
DISTANT_FUTURE = "9999-12-31T23:59:59Z"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant(epoch_millis: int) -> str:
    """Java's ``Instant.toString``: seconds precision when the millis are zero, else milliseconds."""
    moment = _EPOCH + timedelta(milliseconds=epoch_millis)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = epoch_millis % 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def _long_header(message: ExternalMessage, name: str) -> int | None:
    value = message.header(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


class ConnectionStatusMapper:
    alias = "ConnectionStatus"

    def __init__(self, options: Mapping[str, Any], *, connection_id: str) -> None:
        self.connection_id = connection_id
        thing_id = option_str(options, "thingId")
        if not thing_id:
            raise MappingConfigurationInvalid(
                "The mapping option 'thingId' is mandatory for ConnectionStatus."
            )
        if not contains_placeholder(thing_id) and not is_valid_entity_id(thing_id):
            raise MappingConfigurationInvalid(
                f"The mapping option 'thingId' is not a valid Thing ID: '{thing_id}'."
            )
        self.thing_id = compile_option(thing_id, "thingId", frozenset({"header"}))
        self.feature_id = compile_option(
            option_str(options, "featureId") or "ConnectionStatus", "featureId", frozenset({"header"})
        )

    def map_incoming(self, message: ExternalMessage) -> list[Envelope]:
        source = inbound_source(message, self.connection_id)
        thing_id = self.thing_id.resolve(source)
        feature_id = self.feature_id.resolve(source)
        creation_time = _long_header(message, "creation-time")
        ttd = _long_header(message, "ttd")
        if (
            thing_id is None
            or not is_valid_entity_id(thing_id)
            or not feature_id
            or creation_time is None
            or creation_time < 0
            or ttd is None
            or ttd < -1
        ):
            return []
        namespace, _, name = thing_id.partition(":")
        topic = Topic(namespace, name, "things", "twin", "commands", "modify")
        headers: dict[str, Any] = {"response-required": False}
        since = instant(creation_time)
        if ttd == 0:
            path = f"/features/{feature_id}/properties/status/readyUntil"
            return [Envelope(topic=topic, headers=headers, path=path, value=since)]
        until = DISTANT_FUTURE if ttd == -1 else instant(creation_time + ttd * 1000)
        feature = {
            "definition": [FEATURE_DEFINITION],
            "properties": {"status": {"readySince": since, "readyUntil": until}},
        }
        return [Envelope(topic=topic, headers=headers, path=f"/features/{feature_id}", value=feature)]

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]:
        return []
