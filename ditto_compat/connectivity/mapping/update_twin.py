"""The ``UpdateTwinWithLiveResponse`` mapper (``connectivity-mapping`` "UpdateTwinWithLiveResponse mapper",
Ditto's ``UpdateTwinWithLiveResponseMessageMapper``): a device's answer to a live ``retrieve`` command (a Ditto
Protocol response on ``things/live/commands/retrieve`` with a status) also patches the twin: the mapper yields a
``things/twin/commands/merge`` of the response's value at the response's path. Everything else yields nothing,
so the mapper runs beside the ``Ditto`` mapper, which forwards the live response itself.

Option ``dittoHeadersForMerge`` (default ``response-required: false``, ``if-match: *``): the merge command's
headers, whose strings may use ``{{ header:... }}``, ``{{ request:subjectId }}`` and ``{{ time:... }}``; a
string whose placeholder does not resolve is kept as written (as in Ditto). The correlation-id is the
response's with ``-merge-into-twin`` appended.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.common import (
    envelope_from_payload,
    inbound_source,
    option_object,
)
from ditto_compat.connectivity.mapping.implicit_thing_creation import compile_json, resolve_json
from ditto_compat.errors import DittoError
from ditto_compat.model.pointer import MISSING
from ditto_compat.protocol.envelope import Envelope, Topic

DEFAULT_HEADERS_FOR_MERGE = {"response-required": False, "if-match": "*"}
CORRELATION_ID_SUFFIX = "-merge-into-twin"


class UpdateTwinWithLiveResponseMapper:
    alias = "UpdateTwinWithLiveResponse"

    def __init__(self, options: Mapping[str, Any], *, connection_id: str) -> None:
        self.connection_id = connection_id
        headers = option_object(options, "dittoHeadersForMerge")
        self.headers = compile_json(
            DEFAULT_HEADERS_FOR_MERGE if headers is None else headers, "dittoHeadersForMerge"
        )

    def map_incoming(self, message: ExternalMessage) -> list[Envelope]:
        try:
            response = envelope_from_payload(message)
        except DittoError:
            return []  # not a Ditto Protocol message: not for this mapper (Ditto drops it too)
        topic = response.topic
        if (
            topic.group != "things"
            or topic.channel != "live"
            or topic.criterion != "commands"
            or topic.action != "retrieve"
            or response.status is None
            or not 200 <= response.status < 300
            or response.value is MISSING
        ):
            return []
        headers: dict[str, Any] = resolve_json(
            self.headers, inbound_source(message, self.connection_id), keep_unresolved=True
        )
        correlation_id = response.correlation_id or str(uuid.uuid4())
        for key in [k for k in headers if k.lower() == "correlation-id"]:
            del headers[key]
        headers["correlation-id"] = correlation_id + CORRELATION_ID_SUFFIX
        merge_topic = Topic(topic.namespace, topic.name, "things", "twin", "commands", "merge")
        return [Envelope(topic=merge_topic, headers=headers, path=response.path, value=response.value)]

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]:
        return []
