"""The Ditto Protocol envelope and topic (``protocol-specification``, ``protocol-specification-topic``).

An envelope is ``{"topic", "headers", "path", "value"?, "fields"?, "extra"?, "status"?, "revision"?,
"timestamp"?}``; ``topic``, ``headers`` and ``path`` are required. The topic is
``{namespace}/{name}/{group}/{channel}/{criterion}/{action}``: ``things`` has a channel (``twin`` or ``live``),
``policies`` and ``connections`` have none, and the action is optional for some criteria (``errors`` never has one,
``acks`` only for a single acknowledgement). A message subject may contain ``/``, so everything after the criterion
is the action.

Failures are Ditto's: unparsable JSON ``json.invalid``, a missing required field ``json.field.missing``, a field of
the wrong type ``json.invalid`` (Ditto's ``JsonParseException``), a bad topic
``things.protocol.adapter:unknown.topicpath`` and a bad header value ``header.invalid`` / ``timeout.invalid``; all
400. A failure after the headers were read carries the message's ``correlation-id`` in ``error.headers`` so that
the error envelope can still be correlated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ditto_compat.errors import DittoError, HeaderInvalid, JsonFieldMissing, JsonInvalid, UnknownTopicPath
from ditto_compat.model.headers import parse_bool, parse_entity_tags, parse_if_equal, parse_timeout
from ditto_compat.model.jsonio import loads
from ditto_compat.model.pointer import MISSING
from ditto_compat.model.text_cache import cached_by_text

GROUPS = ("things", "policies", "connections")
CHANNELS = ("twin", "live")
CRITERIA = ("commands", "events", "messages", "errors", "acks", "search", "announcements", "streaming")
COMMAND_ACTIONS = ("create", "retrieve", "modify", "merge", "delete", "migrate")
EVENT_ACTIONS = ("created", "modified", "merged", "deleted", "migrated")
SEARCH_ACTIONS = ("subscribe", "request", "cancel", "created", "next", "complete", "failed")
STREAMING_ACTIONS = (
    "subscribeForPersistedEvents",
    "request",
    "cancel",
    "created",
    "next",
    "complete",
    "failed",
)
# which criteria a group knows (things: every one; policies have no messages, acks or search; connections only
# announce)
_GROUP_CRITERIA = {
    "things": frozenset(CRITERIA) - {"announcements"},
    "policies": frozenset({"commands", "events", "errors", "announcements", "streaming"}),
    "connections": frozenset({"announcements", "errors"}),
}
ACK_LABEL_RE = re.compile(r"[a-zA-Z0-9\-_:]{3,100}", re.ASCII)

# "_" stands for "no entity" (RetrieveThings, search, connection topics)
PLACEHOLDER = "_"
CONTENT_TYPE = "application/vnd.eclipse.ditto+json"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic; ``action`` is the action, the message subject, the ack label or the announcement name."""

    namespace: str
    name: str
    group: str
    channel: str | None
    criterion: str
    action: str | None = None

    def __str__(self) -> str:
        parts = [self.namespace, self.name, self.group]
        if self.channel is not None:
            parts.append(self.channel)
        parts.append(self.criterion)
        if self.action is not None:
            parts.append(self.action)
        return "/".join(parts)

    @property
    def entity_id(self) -> str:
        """``namespace:name``: the Thing or Policy id the topic addresses."""
        return f"{self.namespace}:{self.name}"

    def with_criterion(self, criterion: str, action: str | None = None) -> Topic:
        return Topic(self.namespace, self.name, self.group, self.channel, criterion, action)


def _invalid_topic(text: str, why: str) -> DittoError:
    return UnknownTopicPath(f"The topic path '{text}' is not supported: {why}.")


@cached_by_text(max_length=256, maxsize=16_384)  # a device sends the same few topics over and over
def parse_topic(text: str) -> Topic:
    """Parse and check a topic; anything Ditto would not route raises ``things.protocol.adapter:unknown.topicpath``."""
    parts = text.split("/")
    if len(parts) < 4:
        raise _invalid_topic(text, "it has too few segments")
    namespace, name, group = parts[0], parts[1], parts[2]
    if not namespace or not name:
        raise _invalid_topic(text, "the namespace and the entity name must not be empty")
    if group not in GROUPS:
        raise _invalid_topic(text, f"unknown group '{group}' (expected one of {', '.join(GROUPS)})")
    channel: str | None = None
    rest = parts[3:]
    if group == "things":
        channel = rest[0]
        if channel not in CHANNELS:
            raise _invalid_topic(text, f"unknown channel '{channel}' (expected twin or live)")
        rest = rest[1:]
    if not rest or not rest[0]:
        raise _invalid_topic(text, "the criterion is missing")
    criterion = rest[0]
    if criterion not in _GROUP_CRITERIA[group]:
        raise _invalid_topic(text, f"unknown criterion '{criterion}' for group '{group}'")
    action = "/".join(rest[1:]) if len(rest) > 1 else None
    _check_action(text, channel, criterion, action)
    return Topic(namespace, name, group, channel, criterion, action)


def _check_action(text: str, channel: str | None, criterion: str, action: str | None) -> None:
    if criterion == "commands":
        if action not in COMMAND_ACTIONS:
            raise _invalid_topic(text, f"unknown command action '{action}'")
    elif criterion == "events":
        if action not in EVENT_ACTIONS:
            raise _invalid_topic(text, f"unknown event action '{action}'")
    elif criterion == "search":
        # the search protocol only works on the twin (it searches the persisted twins)
        if channel != "twin" or (action is not None and action not in SEARCH_ACTIONS):
            raise _invalid_topic(text, "search works on the twin channel with subscribe, request or cancel")
    elif criterion == "streaming":
        if action not in STREAMING_ACTIONS:
            raise _invalid_topic(text, f"unknown streaming action '{action}'")
    elif criterion == "messages":
        # messages are exchanged with devices, so only on the live channel
        if channel != "live" or not action:
            raise _invalid_topic(text, "messages need the live channel and a subject")
    elif criterion == "errors":
        if action is not None:
            raise _invalid_topic(text, "an error topic has no action")
    elif criterion == "acks":
        if action is not None and ACK_LABEL_RE.fullmatch(action) is None:
            raise _invalid_topic(text, f"the acknowledgement label '{action}' is invalid")
    elif criterion == "announcements" and not action:
        raise _invalid_topic(text, "the announcement name is missing")


# Not frozen, for speed (a frozen init costs 1.5 us, once per protocol message): treat it as immutable.
@dataclass(slots=True)
class Envelope:
    """One Ditto Protocol message. Absent optional fields are ``MISSING`` (value, extra) or ``None``."""

    topic: Topic
    headers: dict[str, Any]
    path: str
    value: Any = MISSING
    status: int | None = None
    fields: str | None = None
    extra: Any = MISSING
    revision: int | None = None
    timestamp: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"topic": str(self.topic), "headers": self.headers, "path": self.path}
        if self.value is not MISSING:
            body["value"] = self.value
        if self.fields is not None:
            body["fields"] = self.fields
        if self.extra is not MISSING:
            body["extra"] = self.extra
        if self.status is not None:
            body["status"] = self.status
        if self.revision is not None:
            body["revision"] = self.revision
        if self.timestamp is not None:
            body["timestamp"] = self.timestamp
        return body

    def header(self, name: str) -> Any:
        """A header by case-insensitive name, or None."""
        return header_value(self.headers, name)

    @property
    def correlation_id(self) -> str | None:
        value = self.header("correlation-id")
        return value if isinstance(value, str) else None


def header_value(headers: Mapping[str, Any], name: str) -> Any:
    """Ditto header names are case-insensitive (and case-preserving): the exact name first, then any casing."""
    if name in headers:
        return headers[name]
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def header_text(name: str, value: Any) -> str:
    """A header value as text: protocol headers are JSON values (``"response-required": false``), while the
    header parsers read the text form HTTP carries."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise HeaderInvalid(f"The value of the header '{name}' must be a string, number or boolean.")


def text_headers(headers: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The text form of the named headers that are present (names compared case-insensitively; the exact name
    wins over another casing). ``names`` are lower case."""
    lowered = {key.lower(): value for key, value in headers.items()}
    out: dict[str, str] = {}
    for name in names:
        value = headers[name] if name in headers else lowered.get(name)
        if value is not None:
            out[name] = header_text(name, value)
    return out


def _check_string(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise HeaderInvalid(f"The value of the header '{name}' must be a string.")


def _check_requested_acks(value: Any) -> None:
    labels: Any = value
    if isinstance(value, str):
        # Ditto also accepts the HTTP form, a comma-separated list
        labels = [label.strip() for label in value.split(",") if label.strip()]
    if not isinstance(labels, list) or not all(
        isinstance(label, str) and ACK_LABEL_RE.fullmatch(label) for label in labels
    ):
        raise HeaderInvalid(
            "The value of the header 'requested-acks' must be a list of acknowledgement labels.",
            "A label consists of 3 to 100 letters, digits, '-', '_' or ':'.",
        )


def check_headers(headers: Mapping[str, Any]) -> None:
    """Validate the values of the headers Ditto defines a type for; unknown (custom) headers pass verbatim."""
    for key, value in headers.items():
        name = key.lower()
        if name in ("correlation-id", "if-match", "if-none-match", "if-equal", "condition", "content-type"):
            _check_string(name, value)
        if name in ("response-required", "allow-policy-lockout", "dry-run", "ditto-weak-ack"):
            parse_bool(name, header_text(name, value))
        elif name == "timeout":
            parse_timeout(header_text(name, value))
        elif name in ("if-match", "if-none-match"):
            parse_entity_tags(name, value)
        elif name == "if-equal":
            parse_if_equal(value)
        elif name == "requested-acks":
            _check_requested_acks(value)
        elif name == "correlation-id" and not value:
            raise HeaderInvalid("The header 'correlation-id' must not be empty.")


def _field(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise JsonFieldMissing(f"The JSON object's field '/{name}' is mandatory!")
    return body[name]


def _wrong_type(name: str, expected: str) -> DittoError:
    return JsonInvalid(f"The value of the field '/{name}' must be {expected}.")


def parse_envelope(raw: str | bytes | dict[str, Any]) -> Envelope:
    """Parse and validate one protocol message (a text frame or its already decoded JSON)."""
    body = loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(body, dict):
        raise JsonInvalid("A Ditto Protocol message must be a JSON object.")
    headers = _field(body, "headers")
    if not isinstance(headers, dict):
        raise _wrong_type("headers", "a JSON object")
    correlation_id = header_value(headers, "correlation-id")
    try:
        return _parse_body(body, headers)
    except DittoError as error:
        # keep the message's correlation-id, so that the error answer can be correlated by the client
        if isinstance(correlation_id, str) and correlation_id and "correlation-id" not in error.headers:
            error.headers["correlation-id"] = correlation_id
        raise


def _parse_body(body: dict[str, Any], headers: dict[str, Any]) -> Envelope:
    topic_text = _field(body, "topic")
    if not isinstance(topic_text, str):
        raise _wrong_type("topic", "a string")
    path = _field(body, "path")
    if not isinstance(path, str):
        raise _wrong_type("path", "a string")
    topic = parse_topic(topic_text)
    check_headers(headers)
    status = body.get("status")
    if status is not None and (
        not isinstance(status, int) or isinstance(status, bool) or not 100 <= status < 600
    ):
        raise _wrong_type("status", "an HTTP status code")
    fields = body.get("fields")
    if fields is not None and not isinstance(fields, str):
        raise _wrong_type("fields", "a string")
    revision = body.get("revision")
    if revision is not None and (not isinstance(revision, int) or isinstance(revision, bool) or revision < 0):
        raise _wrong_type("revision", "a non-negative integer")
    timestamp = body.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        raise _wrong_type("timestamp", "a string")
    return Envelope(
        topic=topic,
        headers=headers,
        path=path,
        value=body.get("value", MISSING),
        status=status,
        fields=fields,
        extra=body.get("extra", MISSING),
        revision=revision,
        timestamp=timestamp,
    )


def salvage(raw: str | bytes | dict[str, Any]) -> tuple[Topic | None, dict[str, Any]]:
    """Best effort for answering a message that failed to parse: its topic (if that parses) and its
    ``correlation-id`` header, so the error envelope keeps what the client can correlate. Never raises."""
    try:
        body = loads(raw) if isinstance(raw, str | bytes) else raw
    except DittoError:
        return None, {}
    if not isinstance(body, dict):
        return None, {}
    headers: dict[str, Any] = {}
    raw_headers = body.get("headers")
    if isinstance(raw_headers, dict):
        correlation_id = header_value(raw_headers, "correlation-id")
        if isinstance(correlation_id, str) and correlation_id:
            headers["correlation-id"] = correlation_id
    topic: Topic | None = None
    if isinstance(body.get("topic"), str):
        try:
            topic = parse_topic(body["topic"])
        except DittoError:
            topic = None
    return topic, headers


# Headers of a command that say how to process it, not what the answer is; they are not echoed in answers
_REQUEST_ONLY = frozenset(
    {
        "content-type",
        "if-match",
        "if-none-match",
        "if-equal",
        "condition",
        "live-channel-condition",
        "requested-acks",
        "response-required",
        "timeout",
        "allow-policy-lockout",
        "policy-view",
    }
)


def answer_headers(
    headers: Mapping[str, Any], *, correlation_id: str | None = None, content_type: str | None = None
) -> dict[str, Any]:
    """The headers of an answer (response or error) to a message with ``headers``: the message's headers without
    the processing instructions, ``response-required: false`` (an answer wants no answer) and the content type of
    the value, as Ditto's error examples show (``things_id_notdeletable``)."""
    out = {key: value for key, value in headers.items() if key.lower() not in _REQUEST_ONLY}
    if correlation_id is not None:
        for key in [k for k in out if k.lower() == "correlation-id"]:
            del out[key]
        out["correlation-id"] = correlation_id
    out["response-required"] = False
    if content_type is not None:
        out["content-type"] = content_type
    return out
