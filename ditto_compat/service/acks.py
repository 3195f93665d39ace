"""Acknowledgements (``basic-acknowledgements``, ``protocol-specification-acks``, inventory §5).

A command may request acknowledgements (``requested-acks``). The built-in ``twin-persisted`` is given by the
commit itself, and ``search-persisted`` as well, since search reads the same committed data; ``live-response``
is the answer to a live command or message. Custom labels are issued by WebSocket clients that declared them
(``/ws/2?declared-acks=...``), after they received the command's event (which carries ``requested-acks``), or
the live command or message. The caller's answer aggregates them as Ditto does: one requested label answers
with its own status; several answer 200 when all succeeded, else 424, with ``{label: {status, payload?,
headers}}``; a label that was not issued within the command's ``timeout`` counts as 408.

Which labels a command effectively requests follows Ditto's ``AbstractCommandAckRequestSetter``: without
``requested-acks`` the channel's implicit label (``twin-persisted`` / ``live-response``) unless no response is
wanted; the other channel's built-in labels are dropped; on the live channel ``response-required`` adds or
removes ``live-response``. A zero ``timeout`` while a response or acknowledgements are requested is a client
error (``header.invalid``, as Ditto's ``AcknowledgementAggregatorActorStarter`` answers).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from ditto_compat.errors import DittoError, HeaderInvalid
from ditto_compat.model.pointer import MISSING
from ditto_compat.protocol.envelope import header_text

TWIN_PERSISTED = "twin-persisted"
SEARCH_PERSISTED = "search-persisted"
LIVE_RESPONSE = "live-response"
BUILT_IN = frozenset({TWIN_PERSISTED, SEARCH_PERSISTED, LIVE_RESPONSE})
_LABEL = re.compile(r"^[a-zA-Z0-9\-_:]{3,100}$")


class AckLabelNotUnique(DittoError):
    status = 409
    error_code = "acknowledgement:label.not.unique"
    default_message = "An acknowledgement label is already declared by another client."
    default_description = "Each acknowledgement label can be declared by one WebSocket session at a time."


class AckLabelNotDeclared(DittoError):
    status = 400
    error_code = "acknowledgement:label.not.declared"
    default_message = "The acknowledgement label was not declared by this client."
    default_description = (
        "Declare the labels a WebSocket client issues on connect: '/ws/2?declared-acks=<label>,...'."
    )


class AckLabelInvalid(DittoError):
    status = 400
    error_code = "acknowledgement:label.invalid"
    default_message = "The acknowledgement label is invalid."
    default_description = "Labels are 3 to 100 characters of letters, digits, '-', '_' and ':'."


@dataclass(frozen=True, slots=True)
class Ack:
    label: str
    status: int
    headers: dict[str, Any] = field(default_factory=dict)
    payload: Any = MISSING

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status}
        if self.payload is not MISSING:
            body["payload"] = self.payload
        body["headers"] = self.headers
        return body


def parse_requested_acks(text: str | None) -> tuple[str, ...] | None:
    """``requested-acks`` as a JSON array or a comma-separated list (None: not given)."""
    if text is None:
        return None
    stripped = text.strip()
    labels: Iterable[Any]
    if stripped.startswith("["):
        try:
            labels = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            labels = [None]
    else:
        labels = [part.strip() for part in stripped.split(",") if part.strip()]
    out: list[str] = []
    for label in labels:
        if not isinstance(label, str) or not _LABEL.match(label):
            raise HeaderInvalid(
                f"The value '{text}' of the header 'requested-acks' is invalid.",
                "List acknowledgement labels of 3 to 100 letters, digits, '-', '_' or ':'.",
            )
        out.append(label)
    return tuple(dict.fromkeys(out))


def requested_labels(value: Any) -> tuple[str, ...] | None:
    """``requested-acks`` as a Ditto Protocol message carries it: a JSON array, or the text form HTTP uses
    (None: not given). Raises on an invalid label."""
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(check_label(str(label)) for label in value)
    return parse_requested_acks(header_text("requested-acks", value))


def check_label(label: str) -> str:
    if not _LABEL.match(label):
        raise AckLabelInvalid(f"The acknowledgement label '{label}' is invalid.")
    return label


class AckWaiter:
    def __init__(self, labels: Iterable[str]) -> None:
        loop = asyncio.get_running_loop()
        self._futures: dict[str, asyncio.Future[Ack]] = {label: loop.create_future() for label in labels}

    def issue(self, ack: Ack) -> bool:
        future = self._futures.get(ack.label)
        if future is None or future.done():
            return False
        future.set_result(ack)
        return True

    async def wait(self, timeout_s: float) -> dict[str, Ack | None]:
        """Each label's ack, or None for those not issued within ``timeout_s``."""
        if self._futures:
            await asyncio.wait(self._futures.values(), timeout=timeout_s)
        return {label: (f.result() if f.done() else None) for label, f in self._futures.items()}


class AckRouter:
    def __init__(self) -> None:
        self._declared: dict[str, object] = {}
        self._waiting: dict[str, AckWaiter] = {}

    def declare(self, labels: Iterable[str], owner: object) -> None:
        labels = [check_label(label) for label in labels]
        taken = [
            label for label in labels if self._declared.get(label, owner) is not owner or label in BUILT_IN
        ]
        if taken:
            raise AckLabelNotUnique(f"The acknowledgement label '{taken[0]}' is already declared.")
        for label in labels:
            self._declared[label] = owner

    def release(self, owner: object) -> None:
        for label in [label for label, o in self._declared.items() if o is owner]:
            del self._declared[label]

    def declared_by(self, label: str) -> object | None:
        """Who declared ``label`` (None: nobody)."""
        return self._declared.get(label)

    def expect(self, correlation_id: str, labels: Iterable[str]) -> AckWaiter:
        waiter = AckWaiter(labels)
        self._waiting[correlation_id] = waiter
        return waiter

    def forget(self, correlation_id: str) -> None:
        self._waiting.pop(correlation_id, None)

    def issue(self, correlation_id: str, ack: Ack) -> bool:
        waiter = self._waiting.get(correlation_id)
        return waiter is not None and waiter.issue(ack)

    def issue_from(self, owner: object, correlation_id: str, ack: Ack) -> bool:
        """An acknowledgement sent by a client: only for a label that client declared (Ditto refuses others
        with ``acknowledgement:label.not.declared``)."""
        if ack.label in BUILT_IN or self._declared.get(ack.label) is not owner:
            raise AckLabelNotDeclared(
                f"Cannot send the acknowledgement with label '{ack.label}': this client did not declare it."
            )
        return self.issue(correlation_id, ack)

    def withheld(self, headers: Mapping[str, str], owners: set[object]) -> None:
        """Weak acknowledgements (``basic-acknowledgements``): a signal requested labels declared by
        subscribers that did not get it (their filter or policy excluded it). Each such label is answered at
        once with 200 and ``ditto-weak-ack: true``, so that the requester does not wait for its timeout."""
        correlation_id = headers.get("correlation-id")
        if not correlation_id or correlation_id not in self._waiting:
            return
        try:
            labels = parse_requested_acks(headers.get("requested-acks")) or ()
        except DittoError:
            return
        for label in labels:
            if label not in BUILT_IN and self._declared.get(label) in owners:
                weak = {"correlation-id": correlation_id, "ditto-weak-ack": True}
                self.issue(correlation_id, Ack(label, 200, weak))

    @contextmanager
    def pending(self, correlation_id: str, request: AckRequest) -> Iterator[PendingAcks]:
        """Wait for the custom labels of ``request`` (registered before the signal goes out, so that no
        acknowledgement is missed) until the block ends."""
        custom = [label for label in request.labels if label not in BUILT_IN]
        waiter = self.expect(correlation_id, custom)
        try:
            yield PendingAcks(correlation_id, request, waiter)
        finally:
            if self._waiting.get(correlation_id) is waiter:
                del self._waiting[correlation_id]


@dataclass(frozen=True, slots=True)
class AckRequest:
    """The acknowledgements a signal effectively requests, and whether its sender wants an answer."""

    labels: tuple[str, ...]
    response_required: bool
    timeout_s: float

    @property
    def only_implicit(self) -> bool:
        """Nothing but the channel's own answer: the signal's ordinary response is the answer."""
        return len(self.labels) <= 1 and all(
            label in (TWIN_PERSISTED, LIVE_RESPONSE) for label in self.labels
        )


# the built-in labels a channel ignores (Ditto's "negated" labels of its ack request setters)
_IGNORED = {"twin": frozenset({LIVE_RESPONSE}), "live": frozenset({TWIN_PERSISTED, SEARCH_PERSISTED})}


class TimeoutZeroWithResponse(HeaderInvalid):
    default_message = (
        "The value of the header 'timeout' must not be zero if response or acknowledgements are requested."
    )
    default_description = "Please provide a positive timeout."


def ack_request(
    requested: tuple[str, ...] | None,
    *,
    channel: str,
    response_required: bool | None,
    timeout_s: float,
) -> AckRequest:
    """Ditto's defaults for ``requested-acks`` and ``response-required`` (None: header absent), and its zero
    ``timeout`` rule."""
    zero = timeout_s == 0
    implicit = LIVE_RESPONSE if channel == "live" else TWIN_PERSISTED
    required = response_required if response_required is not None else not zero
    if requested is None:
        labels: tuple[str, ...] = (implicit,) if required and not zero else ()
    else:
        labels = tuple(label for label in requested if label not in _IGNORED[channel])
        if channel == "live":  # live signals bind live-response to response-required
            if required and labels and implicit not in labels:
                labels = (*labels, implicit)
            elif not required:
                labels = tuple(label for label in labels if label != implicit)
    if zero and (required or labels):
        raise TimeoutZeroWithResponse()
    return AckRequest(labels, required, timeout_s)


class PendingAcks:
    def __init__(self, correlation_id: str, request: AckRequest, waiter: AckWaiter) -> None:
        self.correlation_id = correlation_id
        self.request = request
        self._waiter = waiter
        self._deadline = asyncio.get_running_loop().time() + request.timeout_s

    def remaining_s(self) -> float:
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def collect(self, given: Mapping[str, Ack]) -> dict[str, Ack]:
        """Every requested label's ack, in the requested order: ``given`` (the built-in ones), those issued
        before the deadline, and a 408 for each of the others."""
        issued = await self._waiter.wait(self.remaining_s())
        out: dict[str, Ack] = {}
        for label in self.request.labels:
            ack = given.get(label) or issued.get(label)
            out[label] = ack or timed_out(label, self.request.timeout_s, self.correlation_id)
        return out


def timed_out(label: str, timeout_s: float, correlation_id: str | None = None) -> Ack:
    """Ditto's ``acknowledgement:request.timeout`` for a label not issued in time."""
    headers = {"correlation-id": correlation_id} if correlation_id else {}
    return Ack(
        label,
        408,
        headers,
        {
            "status": 408,
            "error": "acknowledgement:request.timeout",
            "message": f"The acknowledgement request reached the specified timeout of {timeout_s * 1000:,.0f}ms.",
            "description": "Try increasing the timeout and make sure that the requested acknowledgement is "
            "sent back in time.",
        },
    )


def persisted_acks(
    labels: Iterable[str], status: int, headers: Mapping[str, Any], payload: Any
) -> dict[str, Ack]:
    """``twin-persisted`` and ``search-persisted`` among ``labels``: both are given by the commit, with the
    command's own status, headers and value."""
    return {
        label: Ack(label, status, dict(headers), payload)
        for label in labels
        if label in (TWIN_PERSISTED, SEARCH_PERSISTED)
    }


def combined_status(acks: Mapping[str, Ack]) -> int:
    """One acknowledgement: its own status; several: 200 when all are 2xx, else 424 (failed dependency)."""
    if len(acks) == 1:
        (ack,) = acks.values()
        return ack.status
    return 200 if all(200 <= ack.status < 300 for ack in acks.values()) else 424


def aggregate(acks: Mapping[str, Ack]) -> tuple[int, dict[str, Any]]:
    """Ditto's combined status and body over several acknowledgements (all 2xx: 200, otherwise 424)."""
    ok = all(200 <= ack.status < 300 for ack in acks.values())
    return (200 if ok else 424), {label: ack.to_json() for label, ack in acks.items()}
