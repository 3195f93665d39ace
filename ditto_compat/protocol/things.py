"""Thing signals in the Ditto Protocol (``protocol-specification-things*``, ``protocol-specification-errors``).

A command envelope ``<ns>/<name>/things/<channel>/commands/<action>`` with a ``path`` becomes the same
:class:`ThingCommand` an HTTP request becomes (the path is the HTTP sub-path, the headers are the same headers), so
the dispatcher cannot tell the transports apart. ``_/_/things/twin/commands/retrieve`` with
``{"thingIds": [...]}`` is :class:`RetrieveThings`. Answers go the other way: a response keeps the command's topic
and path and adds ``status`` (and ``value`` for 200/201), an event is ``.../events/<action>`` with the event's path,
value, revision and timestamp, an error is ``.../errors`` with the error JSON as value.

Paths that address no Thing resource raise ``things.protocol.adapter:unknown.path`` (400), as Ditto's protocol
adapter does, rather than the 404 of an unknown HTTP route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ditto_compat.domain.events import ThingEvent
from ditto_compat.domain.things import Outcome, ThingCommand
from ditto_compat.errors import (
    DittoError,
    JsonFieldMissing,
    JsonInvalid,
    ResourceNotFound,
    UnknownPath,
    UnknownTopicPath,
)
from ditto_compat.model.fields import FieldSelector, parse_fields
from ditto_compat.model.headers import COMMAND_HEADER_NAMES, CommandHeaders, command_headers_from_lowered
from ditto_compat.model.ids import check_thing_id, namespace_of
from ditto_compat.model.pointer import MISSING, format_pointer, parse_pointer
from ditto_compat.protocol.envelope import (
    JSON,
    PLACEHOLDER,
    Envelope,
    Topic,
    answer_headers,
    header_value,
    text_headers,
)
from ditto_compat.rql.ast import Query
from ditto_compat.rql.fields import validate_query
from ditto_compat.rql.parser import parse_rql

# the actions ThingCommand knows; "migrate" (migrateDefinition) is a valid topic that this server does not run
THING_COMMAND_ACTIONS = ("create", "retrieve", "modify", "merge", "delete")
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True, slots=True)
class RetrieveThings:
    """``_/_/things/<channel>/commands/retrieve`` with ``{"thingIds": [...]}``: several Things at once. A topic
    namespace other than ``_`` restricts the ids to that namespace (Ditto's optional ``namespace``)."""

    thing_ids: tuple[str, ...]
    headers: CommandHeaders = field(default_factory=CommandHeaders)
    fields: FieldSelector | None = None
    namespace: str | None = None


def command_headers_of(env: Envelope) -> CommandHeaders:
    """The :class:`CommandHeaders` of an envelope, parsed as the HTTP API parses its headers."""
    return command_headers_from_lowered(text_headers(env.headers, COMMAND_HEADER_NAMES))


def condition_of(env: Envelope) -> Query | None:
    """The ``condition`` header as a checked RQL query (``basic-conditional-requests``)."""
    text = header_value(env.headers, "condition")
    if not text:
        return None
    query = parse_rql(str(text))
    validate_query(query)
    return query


def fields_of(env: Envelope) -> FieldSelector | None:
    return parse_fields(env.fields) if env.fields else None


def _unknown_path(env: Envelope) -> DittoError:
    return UnknownPath(
        f"The path '{env.path}' does not correspond to any known command, response or event "
        f"of the topic '{env.topic}'."
    )


def thing_command(env: Envelope) -> ThingCommand | RetrieveThings:
    """The Thing command of a ``things/<twin|live>/commands/<action>`` envelope (the caller decides what the live
    channel means)."""
    topic = env.topic
    if topic.group != "things" or topic.criterion != "commands":
        raise UnknownTopicPath(f"The topic path '{topic}' is not a Thing command.")
    action = topic.action or ""
    if action not in THING_COMMAND_ACTIONS:
        raise UnknownTopicPath(
            f"The topic path '{topic}' is not supported: the command action '{action}' is not available.",
            f"Use one of {', '.join(THING_COMMAND_ACTIONS)}.",
        )
    try:
        pointer = parse_pointer(env.path)
    except DittoError:
        raise _unknown_path(env) from None
    if topic.name == PLACEHOLDER and action == "retrieve" and not pointer:
        return _retrieve_things(env)
    thing_id = check_thing_id(topic.entity_id)
    cmd = ThingCommand(
        action=action,
        thing_id=thing_id,
        path=pointer,
        value=_value_of(env, action),
        headers=command_headers_of(env),
        fields=fields_of(env),
        condition=condition_of(env),
    )
    if action == "create" and pointer:
        raise _unknown_path(env)
    try:
        cmd.resource  # noqa: B018  (classifies the path: only Thing resources are addressable)
    except ResourceNotFound:
        raise _unknown_path(env) from None
    return cmd


def _value_of(env: Envelope, action: str) -> Any:
    """The payload: required for create, modify and merge (``null`` is a value: merge-deletes), ignored else."""
    if action not in ("create", "modify", "merge"):
        return MISSING
    if env.value is MISSING:
        raise JsonFieldMissing(
            f"The JSON object's field '/value' is mandatory for a '{action}' command!",
            "Send the new value of the resource at the command's path in 'value'.",
        )
    return env.value


def _retrieve_things(env: Envelope) -> RetrieveThings:
    value = env.value
    if not isinstance(value, dict) or "thingIds" not in value:
        raise JsonFieldMissing(
            "The JSON object's field '/value/thingIds' is mandatory for retrieving several Things!",
            "Send 'value': {\"thingIds\": [...]}.",
        )
    ids = value["thingIds"]
    if not isinstance(ids, list) or not all(isinstance(thing_id, str) for thing_id in ids):
        raise JsonInvalid("The value of the field '/value/thingIds' must be an array of Thing IDs.")
    namespace = None if env.topic.namespace == PLACEHOLDER else env.topic.namespace
    return RetrieveThings(
        thing_ids=tuple(check_thing_id(thing_id) for thing_id in ids),
        headers=command_headers_of(env),
        fields=fields_of(env),
        namespace=namespace,
    )


def thing_topic(thing_id: str, channel: str, criterion: str, action: str | None) -> Topic:
    namespace, _, name = thing_id.partition(":")
    return Topic(namespace, name, "things", channel, criterion, action)


def thing_response(
    cmd: ThingCommand, outcome: Outcome, headers: dict[str, Any], *, channel: str = "twin"
) -> Envelope:
    """The response to ``cmd``: its topic and path, ``status``, ``value`` for 200 and 201, and as headers the
    command's ``headers`` (processing instructions dropped) with ``correlation-id``, ``response-required: false``
    and the ``etag`` of the outcome."""
    has_value = outcome.status in (200, 201) and outcome.value is not MISSING
    out = answer_headers(
        headers, correlation_id=cmd.headers.correlation_id, content_type=JSON if has_value else None
    )
    if outcome.etag:
        out["etag"] = outcome.etag
    return Envelope(
        topic=thing_topic(cmd.thing_id, channel, "commands", cmd.action),
        headers=out,
        path=format_pointer(cmd.path),
        value=outcome.value if has_value else MISSING,
        status=outcome.status,
    )


def retrieve_things_response(
    cmd: RetrieveThings, things: list[dict[str, Any]], headers: dict[str, Any], *, channel: str = "twin"
) -> Envelope:
    """The response to :class:`RetrieveThings`: 200 with the visible Things as an array. The topic names the
    namespace the ids share, else ``_`` (``retrievethingsresponse``: ``org.eclipse.ditto/_/things/...``)."""
    namespaces = {namespace_of(thing_id) for thing_id in cmd.thing_ids}
    namespace = cmd.namespace or (namespaces.pop() if len(namespaces) == 1 else PLACEHOLDER)
    return Envelope(
        topic=Topic(namespace, PLACEHOLDER, "things", channel, "commands", "retrieve"),
        headers=answer_headers(headers, correlation_id=cmd.headers.correlation_id, content_type=JSON),
        path="/",
        value=things,
        status=200,
    )


def thing_event(
    event: ThingEvent, headers: dict[str, Any], channel: str = "twin", extra: Any = MISSING
) -> Envelope:
    """``<ns>/<name>/things/<channel>/events/<action>`` with the event's path, value (none for a deletion),
    revision and timestamp; ``extra`` carries the enriched ``extraFields``. A merged event's value is the merge
    patch, labelled ``application/merge-patch+json`` as Ditto does."""
    out = dict(headers)
    if event.action == "merged":
        for key in [k for k in out if k.lower() == "content-type"]:
            del out[key]
        out["content-type"] = MERGE_PATCH
    return Envelope(
        topic=thing_topic(event.thing_id, channel, "events", event.action),
        headers=out,
        path=format_pointer(event.path),
        value=event.value,
        extra=extra,
        revision=event.revision,
        timestamp=event.timestamp or None,
    )


UNKNOWN_TOPIC = Topic("unknown", "unknown", "things", "twin", "errors")


def error_envelope(error: DittoError, topic: Topic | None, headers: dict[str, Any]) -> Envelope:
    """An error answer: the failed message's entity and channel with criterion ``errors`` (or
    ``unknown/unknown/things/twin/errors`` when the topic was unreadable), path ``/``, the error JSON as value
    and its status. Headers: the message's (processing instructions dropped) plus the error's own (e.g. the
    ``correlation-id`` that :func:`parse_envelope` attaches), ``response-required: false`` and the JSON type."""
    error_topic = UNKNOWN_TOPIC if topic is None else topic.with_criterion("errors")
    out = answer_headers({**headers, **error.headers}, content_type=JSON)
    return Envelope(topic=error_topic, headers=out, path="/", value=error.to_json(), status=error.status)
