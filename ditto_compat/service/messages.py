"""Live messages and live commands (``basic-messages``, ``httpapi-messages``, ``protocol-twinlive``).

A message is sent (over HTTP or ``/ws/2``) to a Thing's (or Feature's) ``inbox`` or from its ``outbox`` by
anyone with WRITE on its ``message:/...`` resource (a ``claim`` needs none), and delivered to every receiver (a
``/ws/2`` session that sent ``START-SEND-MESSAGES``) whose subjects may READ that resource, except the receiver
that sent it. The sender waits up to ``timeout``
for the first reply carrying the message's ``correlation-id``; ``timeout=0`` waits for nothing (202). Nothing
is stored: a message that finds no receiver, or no reply in time, ends in 408.

Live commands (``channel=live``) travel the same way: a Thing command is offered as a Ditto Protocol frame to
the sessions that sent ``START-SEND-LIVE-COMMANDS`` and may READ the addressed ``thing:`` resource, and the
first live response with the command's ``correlation-id`` is the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ditto_compat.domain.enforcer import READ, WRITE, Enforcer
from ditto_compat.errors import DittoError
from ditto_compat.model.ids import namespace_of
from ditto_compat.model.pointer import MISSING, Pointer

MAX_PAYLOAD_BYTES = 250 * 1024
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
CLAIM_DEFAULT_TIMEOUT_S = 60.0
CLAIM_MAX_TIMEOUT_S = 600.0


class MessageTimeout(DittoError):
    status = 408
    error_code = "messages:message.timeout"
    default_message = "The Message did not receive a response within the specified time."
    default_description = (
        "The Thing or Feature did not answer; check that it is connected, or use a longer timeout."
    )


class MessagePayloadTooLarge(DittoError):
    status = 413
    error_code = "messages:payload.toolarge"
    default_message = "The size of the Message payload exceeds the maximum of 250 kB."


class MessageSendNotAllowed(DittoError):
    status = 403
    error_code = "messages:send.notallowed"
    default_message = "You are not allowed to send Messages with this subject to this Thing or Feature."
    default_description = "Check the 'message:' resources of the Thing's Policy: sending needs WRITE."


class MessageSubjectInvalid(DittoError):
    status = 400
    error_code = "messages:subject.invalid"
    default_message = "The Message subject is invalid."
    default_description = "The subject must not be empty."


@dataclass(frozen=True, slots=True)
class ThingMessage:
    thing_id: str
    direction: str  # "inbox" or "outbox"
    subject: str  # "claim" for a claim message
    feature_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # content-type, correlation-id, timeout ...
    payload: Any = MISSING  # JSON for a JSON content type, text otherwise; MISSING for none

    @property
    def is_claim(self) -> bool:
        return self.subject == "claim" and self.direction == "inbox" and self.feature_id is None

    @property
    def path(self) -> str:
        """The protocol path, and the ``message:`` resource it is checked against."""
        base = f"/features/{self.feature_id}" if self.feature_id is not None else ""
        if self.is_claim:
            return f"{base}/inbox/claim"
        return f"{base}/{self.direction}/messages/{self.subject}"

    @property
    def resource(self) -> str:
        return "message:" + self.path

    @property
    def correlation_id(self) -> str:
        return self.headers["correlation-id"]


@dataclass(frozen=True, slots=True)
class MessageReply:
    status: int
    headers: dict[str, str]
    payload: Any  # MISSING for none


class LiveCommandReceiver(Protocol):
    @property
    def subjects(self) -> tuple[str, ...]: ...

    @property
    def live_namespaces(self) -> frozenset[str] | None: ...

    def offer_live_command(self, frame: dict[str, Any]) -> bool:
        """Take the protocol frame for delivery (False: could not)."""
        ...


class MessageReceiver(Protocol):
    @property
    def subjects(self) -> tuple[str, ...]: ...

    @property
    def namespaces(self) -> frozenset[str] | None: ...

    def offer_message(self, message: ThingMessage) -> bool:
        """Take the message for delivery (False: could not)."""
        ...


EnforcerOfThing = Callable[[str], Awaitable[Enforcer | None]]


class MessageRouter:
    def __init__(self, enforcer_of: EnforcerOfThing) -> None:
        self._enforcer_of = enforcer_of
        self._receivers: set[MessageReceiver] = set()
        self._live_receivers: set[LiveCommandReceiver] = set()
        self._waiting: dict[str, asyncio.Future[MessageReply]] = {}
        self.sent = 0
        self.delivered = 0

    def add(self, receiver: MessageReceiver) -> None:
        self._receivers.add(receiver)

    def remove(self, receiver: MessageReceiver) -> None:
        self._receivers.discard(receiver)

    def add_live(self, receiver: LiveCommandReceiver) -> None:
        self._live_receivers.add(receiver)

    def remove_live(self, receiver: LiveCommandReceiver) -> None:
        self._live_receivers.discard(receiver)

    async def send_live_command(
        self,
        thing_id: str,
        resource: str,
        frame: dict[str, Any],
        correlation_id: str,
        timeout_s: float,
        *,
        origin: object | None = None,
    ) -> MessageReply | None:
        """Offer a live command (already authorized) and wait for its live response (None: nobody answered
        in time, or ``timeout_s`` is 0). ``origin``, the receiver that sent the command, does not get it back
        (as Ditto does not echo a live signal to the session it came from)."""
        enforcer = await self._enforcer_of(thing_id)
        waiting: asyncio.Future[MessageReply] | None = None
        if timeout_s > 0:
            waiting = asyncio.get_running_loop().create_future()
            self._waiting[correlation_id] = waiting
        try:
            namespace = namespace_of(thing_id)
            for receiver in list(self._live_receivers):
                if receiver is origin:
                    continue
                if receiver.live_namespaces is not None and namespace not in receiver.live_namespaces:
                    continue
                if enforcer is None or not enforcer.has_partial(receiver.subjects, resource, (READ,)):
                    continue
                receiver.offer_live_command(frame)
            if waiting is None:
                return None
            try:
                return await asyncio.wait_for(waiting, timeout_s)
            except TimeoutError:
                return None
        finally:
            if waiting is not None and self._waiting.get(correlation_id) is waiting:
                del self._waiting[correlation_id]

    async def send(
        self,
        message: ThingMessage,
        subjects: tuple[str, ...],
        timeout_s: float,
        *,
        origin: object | None = None,
    ) -> MessageReply | None:
        """Deliver ``message`` and wait for its reply (None when ``timeout_s`` is 0). ``origin``, the receiver
        that sent the message, does not get it back."""
        enforcer = await self._enforcer_of(message.thing_id)
        if not message.is_claim and (
            enforcer is None or not enforcer.has_unrestricted(subjects, message.resource, (WRITE,))
        ):
            raise MessageSendNotAllowed()
        waiting: asyncio.Future[MessageReply] | None = None
        if timeout_s > 0:
            waiting = asyncio.get_running_loop().create_future()
            self._waiting[message.correlation_id] = waiting
        try:
            self.sent += 1
            namespace = namespace_of(message.thing_id)
            for receiver in list(self._receivers):
                if receiver is origin:
                    continue
                if receiver.namespaces is not None and namespace not in receiver.namespaces:
                    continue
                if enforcer is None or not enforcer.has_unrestricted(
                    receiver.subjects, message.resource, (READ,)
                ):
                    continue
                if receiver.offer_message(message):
                    self.delivered += 1
            if waiting is None:
                return None
            try:
                return await asyncio.wait_for(waiting, timeout_s)
            except TimeoutError:
                raise MessageTimeout(
                    f"The Message with subject '{message.subject}' to '{message.thing_id}' was not answered "
                    f"within {timeout_s:g}s."
                ) from None
        finally:
            if waiting is not None and self._waiting.get(message.correlation_id) is waiting:
                del self._waiting[message.correlation_id]

    def reply(self, correlation_id: str, reply: MessageReply) -> bool:
        """A receiver's answer; the first one for a correlation-id wins (False: nobody waits for it)."""
        waiting = self._waiting.get(correlation_id)
        if waiting is None or waiting.done():
            return False
        waiting.set_result(reply)
        return True


def message_target(pointer: Pointer) -> tuple[str | None, str, str] | None:
    """``(feature id, direction, subject)`` when the path below a Thing addresses messages, else None."""
    feature_id: str | None = None
    rest = pointer
    if len(rest) >= 2 and rest[0] == "features":
        feature_id, rest = rest[1], rest[2:]
    if rest == ("inbox", "claim") and feature_id is None:
        return None, "inbox", "claim"
    if len(rest) >= 2 and rest[0] in ("inbox", "outbox") and rest[1] == "messages":
        return feature_id, rest[0], "/".join(rest[2:])
    return None
