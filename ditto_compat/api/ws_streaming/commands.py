"""The commands of Ditto's two reactive-streams protocols, read from their envelopes.

``protocol-specification-things-search``: ``_/_/things/twin/search/subscribe`` with ``{filter?, options?,
namespaces?}`` (and the envelope's ``fields``); ``protocol-specification-streaming-subscription``:
``<ns>/<name>/<group>[/<channel>]/streaming/subscribeForPersistedEvents`` with ``{fromHistoricalRevision?,
toHistoricalRevision?, fromHistoricalTimestamp?, toHistoricalTimestamp?, filter?}``; both share ``request``
(``{subscriptionId, demand}``) and ``cancel`` (``{subscriptionId}``).

Only the JSON shape is checked here (a wrong shape is answered at once with ``json.invalid`` /
``json.field.missing``, as Ditto's protocol adapter does); what the values mean (RQL, options, namespaces,
fields) is checked when the first page is produced, so that it arrives as ``failed`` after the first
``request``, as in Ditto (``StreamThingsIT``: wrong options, wrong filter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ditto_compat.errors import DittoError, JsonFieldMissing, JsonInvalid
from ditto_compat.model.pointer import MISSING
from ditto_compat.protocol.envelope import Envelope


@dataclass(frozen=True, slots=True)
class SearchSubscription:
    filter: str | None
    options: str | None
    namespaces: tuple[str, ...] | None  # None (or an empty list in the command): every namespace
    fields: str | None


@dataclass(frozen=True, slots=True)
class PersistedEventsSubscription:
    """Revisions: 0 (the default) is the first, a negative one counts back from the current revision;
    ``to_revision`` None or 0 is the current revision. Timestamps bound the events' own timestamps."""

    from_revision: int
    to_revision: int | None
    from_timestamp: datetime | None
    to_timestamp: datetime | None
    filter: str | None


@dataclass(frozen=True, slots=True)
class Demand:
    subscription_id: str
    demand: int  # not checked here: a demand <= 0 fails the subscription (reactive-streams rule 3.9)


@dataclass(frozen=True, slots=True)
class Cancel:
    subscription_id: str


def _wrong_type(name: str, expected: str) -> DittoError:
    return JsonInvalid(f"The value of the field '/{name}' must be {expected}.")


def _value(envelope: Envelope, *, required: bool) -> dict[str, Any]:
    value = envelope.value
    if value is MISSING or value is None:
        if required:
            raise JsonFieldMissing("The JSON object's field '/value' is mandatory!")
        return {}
    if not isinstance(value, dict):
        raise _wrong_type("value", "a JSON object")
    return value


def _string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong_type(name, "a string")
    return value


def _integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong_type(name, "an integer")
    return value


def _timestamp(body: dict[str, Any], name: str) -> datetime | None:
    text = _string(body, name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _wrong_type(name, "an ISO-8601 timestamp, e.g. 2022-10-24T03:11:15Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _subscription_id(body: dict[str, Any]) -> str:
    if "subscriptionId" not in body:
        raise JsonFieldMissing("The JSON object's field '/subscriptionId' is mandatory!")
    value = _string(body, "subscriptionId")
    if value is None:
        raise _wrong_type("subscriptionId", "a string")
    return value


def search_subscription(envelope: Envelope) -> SearchSubscription:
    body = _value(envelope, required=False)
    raw = body.get("namespaces")
    namespaces: tuple[str, ...] | None = None
    if raw is not None:
        if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
            raise _wrong_type("namespaces", "an array of strings")
        namespaces = tuple(raw) or None  # as Ditto's SubscriptionManager: an empty list means all
    return SearchSubscription(_string(body, "filter"), _string(body, "options"), namespaces, envelope.fields)


def persisted_events_subscription(envelope: Envelope) -> PersistedEventsSubscription:
    body = _value(envelope, required=False)
    return PersistedEventsSubscription(
        from_revision=_integer(body, "fromHistoricalRevision") or 0,
        to_revision=_integer(body, "toHistoricalRevision"),
        from_timestamp=_timestamp(body, "fromHistoricalTimestamp"),
        to_timestamp=_timestamp(body, "toHistoricalTimestamp"),
        filter=_string(body, "filter") or None,
    )


def demand_of(envelope: Envelope) -> Demand:
    body = _value(envelope, required=True)
    if "demand" not in body:
        raise JsonFieldMissing("The JSON object's field '/demand' is mandatory!")
    demand = _integer(body, "demand")
    if demand is None:
        raise _wrong_type("demand", "an integer")
    return Demand(_subscription_id(body), demand)


def cancel_of(envelope: Envelope) -> Cancel:
    return Cancel(_subscription_id(_value(envelope, required=True)))
