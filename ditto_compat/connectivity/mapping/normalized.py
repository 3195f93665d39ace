"""The ``Normalized`` mapper (``connectivity-mapping`` "Normalized mapper", Ditto's ``NormalizedMessageMapper``):
outbound only. Thing ``created``/``modified``/``merged`` events (and the deletion of a whole Thing) become one
JSON object shaped like the Thing (``thingId`` plus the changed part at its path), with ``_modified``,
``_revision``, ``_deleted`` and the abridged original message under ``_context``. Everything else is dropped,
and so is every inbound message, as in Ditto.

Options: ``fields`` (a field selector applied to the result) and ``includeDeletedFields`` (``_deletedFields``
for partial deletions and merge-patch deletions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.common import option_bool, option_str
from ditto_compat.connectivity.mapping.errors import MappingConfigurationInvalid
from ditto_compat.errors import DittoError
from ditto_compat.model.fields import FieldSelector, parse_fields, project
from ditto_compat.model.pointer import MISSING, Pointer, format_pointer, parse_pointer, set_at
from ditto_compat.protocol.envelope import Envelope

_CHANGES = ("created", "modified", "merged")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Ditto's ``mergeJsonValues(json, extra)``: the event's own values win over the enriched extra fields."""
    out = dict(extra)
    for key, value in base.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(value, out[key])
        else:
            out[key] = value
    return out


def _without_nulls(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if value is None:
            continue
        if isinstance(value, dict):
            value = _without_nulls(value)
            if not value:
                continue
        out[key] = value
    return out


def _merge_deletions(
    patch: dict[str, Any], base: Pointer, timestamp: str, out: dict[str, Any]
) -> dict[str, Any]:
    for key, value in patch.items():
        if key.startswith("{{") and key.endswith("}}") and ("~" in key or "/" in key):
            continue  # a regex deletion names no concrete field
        path = (*base, key)
        if value is None:
            out = set_at(out, path, timestamp)
        elif isinstance(value, dict):
            out = _merge_deletions(value, path, timestamp, out)
    return out


class NormalizedMapper:
    alias = "Normalized"

    def __init__(self, options: Mapping[str, Any]) -> None:
        fields = option_str(options, "fields")
        self.selector: FieldSelector | None = None
        if fields:
            try:
                self.selector = parse_fields(fields)
            except DittoError as error:
                raise MappingConfigurationInvalid(
                    f"The mapping option 'fields' is invalid: {error.message}"
                ) from None
        self.include_deleted_fields = option_bool(options, "includeDeletedFields", False)

    def map_incoming(self, message: ExternalMessage) -> list[Envelope]:
        return []

    def _is_thing_deleted(self, envelope: Envelope) -> bool:
        return envelope.topic.action == "deleted" and parse_pointer(envelope.path) == ()

    def _is_change(self, envelope: Envelope) -> bool:
        topic = envelope.topic
        if topic.group != "things" or topic.criterion != "events":
            return False
        return (
            topic.action in _CHANGES
            or (self.include_deleted_fields and topic.action == "deleted")
            or self._is_thing_deleted(envelope)
        )

    def _deleted_fields(self, envelope: Envelope, path: Pointer) -> dict[str, Any]:
        timestamp = envelope.timestamp
        if timestamp is None:
            return {}
        if envelope.topic.action == "deleted" and path:
            return set_at({}, path, timestamp)
        if envelope.topic.action == "merged":
            if envelope.value is None and path:
                return set_at({}, path, timestamp)
            if isinstance(envelope.value, dict):
                return _merge_deletions(envelope.value, path, timestamp, {})
        return {}

    def normalize(self, envelope: Envelope) -> dict[str, Any]:
        path = parse_pointer(envelope.path)
        doc: dict[str, Any] = {"thingId": envelope.topic.entity_id}
        value = envelope.value
        if not path and value is not MISSING:
            if isinstance(value, dict):
                doc.update(value)
        elif value is not MISSING:
            doc = set_at(doc, path, value)
        if envelope.timestamp is not None:
            doc["_modified"] = envelope.timestamp
        if envelope.revision is not None:
            doc["_revision"] = envelope.revision
        if self._is_thing_deleted(envelope) and envelope.timestamp is not None:
            doc["_deleted"] = envelope.timestamp
        if self.include_deleted_fields:
            deleted = self._deleted_fields(envelope, path)
            if deleted:
                doc["_deletedFields"] = deleted
        context: dict[str, Any] = {
            "topic": str(envelope.topic),
            "path": format_pointer(path),
            "value": None if value is MISSING else value,
        }
        if envelope.fields is not None:
            context["fields"] = envelope.fields
        context["headers"] = dict(envelope.headers)
        doc["_context"] = context
        if isinstance(envelope.extra, dict):
            doc = _deep_merge(doc, envelope.extra)
        if self.selector is not None:
            doc = project(doc, self.selector)
        if envelope.topic.action == "merged":
            doc = _without_nulls(doc)
        return doc

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]:
        if not self._is_change(envelope):
            return []
        body = orjson.dumps(self.normalize(envelope)).decode()
        return [ExternalMessage(headers={"content-type": "application/json"}, text=body)]
