"""Acknowledgements (``basic-acknowledgements``, ``protocol-specification-acks``, inventory §5).

A command may request acknowledgements (``requested-acks``). The built-in ``twin-persisted`` is given by the
commit itself, and ``search-persisted`` as well, since search reads the same committed data; custom labels are
issued by WebSocket clients that declared them (``/ws/2?declared-acks=...``), after they received the command's
event (which carries ``requested-acks``). The caller's answer aggregates them as Ditto does: one requested
label answers with its own status; several answer 200 when all succeeded, else 424, with
``{label: {status, payload?, headers}}``; a label that was not issued within the command's ``timeout`` counts
as 408.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ditto_compat.errors import DittoError, HeaderInvalid
from ditto_compat.model.pointer import MISSING

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

    def expect(self, correlation_id: str, labels: Iterable[str]) -> AckWaiter:
        waiter = AckWaiter(labels)
        self._waiting[correlation_id] = waiter
        return waiter

    def forget(self, correlation_id: str) -> None:
        self._waiting.pop(correlation_id, None)

    def issue(self, correlation_id: str, ack: Ack) -> bool:
        waiter = self._waiting.get(correlation_id)
        return waiter is not None and waiter.issue(ack)


def timed_out(label: str, timeout_s: float) -> Ack:
    return Ack(
        label,
        408,
        {},
        {
            "status": 408,
            "error": "acknowledgement:request.timeout",
            "message": f"The acknowledgement '{label}' was not received within {timeout_s:g}s.",
        },
    )


def aggregate(acks: Mapping[str, Ack]) -> tuple[int, dict[str, Any]]:
    """Ditto's combined status and body over several acknowledgements (all 2xx: 200, otherwise 424)."""
    ok = all(200 <= ack.status < 300 for ack in acks.values())
    return (200 if ok else 424), {label: ack.to_json() for label, ack in acks.items()}
