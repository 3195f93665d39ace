"""Events and messages as Ditto Protocol envelopes, as every consumer sends them on: ``/ws/2`` sessions and
connection targets render a hub delivery or a routed message the same way."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from ditto_compat.model.pointer import MISSING
from ditto_compat.protocol.envelope import Envelope, Topic
from ditto_compat.protocol.things import thing_event
from ditto_compat.service.hub import Delivery
from ditto_compat.service.messages import ThingMessage


def protocol_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Headers for a frame: ``requested-acks`` travels as a JSON array in the protocol (it is kept as its text
    form alongside the command and the message)."""
    out = dict(headers)
    labels = out.get("requested-acks")
    if isinstance(labels, str) and labels.startswith("["):
        with contextlib.suppress(orjson.JSONDecodeError):
            out["requested-acks"] = orjson.loads(labels)
    return out


def event_envelope(delivery: Delivery) -> Envelope:
    """The event as its subscribers may read it; built once per delivery, which the subscribers that see the
    event alike share."""
    rendered = delivery.rendered.get("envelope")
    if isinstance(rendered, Envelope):
        return rendered
    event = delivery.change.event
    if event.value is not delivery.value:
        event = replace(event, value=delivery.value)
    extra = delivery.extra if delivery.extra is not None else MISSING
    envelope = thing_event(event, protocol_headers(delivery.change.headers), delivery.change.channel, extra)
    delivery.rendered["envelope"] = envelope
    return envelope


def message_envelope(message: ThingMessage) -> Envelope:
    """A message to or from a Thing, as its receivers get it (``things/live/messages/<subject>``)."""
    namespace, _, name = message.thing_id.partition(":")
    topic = Topic(namespace, name, "things", "live", "messages", message.subject)
    return Envelope(topic, protocol_headers(message.headers), message.path, message.payload)
