"""One Ditto Protocol message, applied under an authorization context (``protocol-specification``): what a
connection source sends through the one command path.

Twin Thing commands go to the dispatcher, Policy commands to the policy service, acknowledgements to the ack
router, responses to live commands and messages back to whoever waits for them, and messages to a Thing to its
message subscribers. The answer is the response envelope, or None when none is due (``response-required:
false``, acknowledgements, replies).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.things import ThingCommand
from ditto_compat.errors import DittoError
from ditto_compat.model.headers import new_correlation_id
from ditto_compat.model.pointer import parse_pointer
from ditto_compat.protocol.envelope import Envelope
from ditto_compat.protocol.policies import policy_command, policy_response
from ditto_compat.protocol.things import (
    RetrieveThings,
    retrieve_things_response,
    thing_command,
    thing_response,
)
from ditto_compat.service.acks import Ack, AckRouter
from ditto_compat.service.dispatcher import Dispatcher
from ditto_compat.service.messages import (
    MessageReply,
    MessageRouter,
    MessageSubjectInvalid,
    ThingMessage,
    message_target,
)
from ditto_compat.service.policies import PolicyService

log = logging.getLogger(__name__)

# The answer to one message of a batch: the response envelope (None when none is due) or the error.
Answer = Envelope | None | BaseException
_MODIFICATIONS = frozenset({"create", "modify", "merge", "delete"})


class SignalUnsupported(DittoError):
    status = 400
    error_code = "things:protocol.message.unsupported"
    default_message = "The Ditto Protocol message is not supported here."
    default_description = (
        "Send twin Thing commands, Policy commands, acknowledgements, messages or live responses."
    )


class SignalHandler:
    def __init__(
        self,
        dispatcher: Dispatcher,
        policies: PolicyService,
        acks: AckRouter,
        messages: MessageRouter,
    ) -> None:
        self._dispatcher = dispatcher
        self._policies = policies
        self._acks = acks
        self._messages = messages
        self._background: set[asyncio.Task[Any]] = set()

    def batch(self) -> AbstractContextManager[None]:
        """Messages handled within it arrived together: each policy is read once for all of them."""
        return self._dispatcher.enforcers.snapshot()

    async def handle(self, envelope: Envelope, auth: AuthContext) -> Envelope | None:
        topic = envelope.topic
        headers = _echo_headers(envelope)
        if topic.group == "things" and topic.channel == "twin" and topic.criterion == "commands":
            parsed = thing_command(envelope)
            if isinstance(parsed, RetrieveThings):
                views = await self._dispatcher.retrieve_many(list(parsed.thing_ids), auth, parsed.fields)
                return retrieve_things_response(parsed, views, headers)
            parsed.resource  # noqa: B018  (validates the path before any I/O)
            outcome = await self._dispatcher.handle(parsed, auth)
            return thing_response(parsed, outcome, headers) if parsed.headers.response_required else None
        if topic.group == "policies" and topic.criterion == "commands":
            cmd = policy_command(envelope)
            policy_outcome = await self._policies.handle(cmd, auth)
            return policy_response(cmd, policy_outcome, headers) if cmd.headers.response_required else None
        if topic.group == "things" and topic.criterion == "acks" and topic.action:
            self._acks.issue(
                envelope.correlation_id or "", Ack(topic.action, envelope.status or 200, headers)
            )
            return None
        live = topic.group == "things" and topic.channel == "live"
        if live and envelope.status is not None and topic.criterion in ("commands", "messages"):
            # a device answers a live command or a message it received
            reply_headers = {str(k).lower(): str(v) for k, v in envelope.headers.items()}
            self._messages.reply(
                envelope.correlation_id or "", MessageReply(envelope.status, reply_headers, envelope.value)
            )
            return None
        if live and topic.criterion == "messages":
            self._send_message(envelope, auth)
            return None
        raise SignalUnsupported(f"The Ditto Protocol message with topic '{topic}' is not supported here.")

    @staticmethod
    def is_twin_modification(envelope: Envelope) -> bool:
        """A twin Thing command that changes the Thing: what :meth:`handle_modifications` takes."""
        topic = envelope.topic
        return (
            topic.group == "things"
            and topic.channel == "twin"
            and topic.criterion == "commands"
            and topic.action in _MODIFICATIONS
        )

    async def handle_modifications(
        self, items: Sequence[tuple[Envelope, AuthContext]], *, respond: bool = True
    ) -> list[Answer]:
        """Twin modifications that arrived together, applied as one batch (``Dispatcher.handle_many``): per
        item, in order, what :meth:`handle` would have answered, or the error it would have raised. Without
        ``respond`` (nobody would read them) no response envelopes are rendered. Raises only when the store is
        unavailable."""
        answers: list[Answer] = [None] * len(items)
        batch: list[tuple[int, ThingCommand, AuthContext, dict[str, Any]]] = []
        for index, (envelope, auth) in enumerate(items):
            try:
                parsed = thing_command(envelope)
                if isinstance(parsed, RetrieveThings) or parsed.action == "retrieve":
                    answers[index] = await self.handle(envelope, auth)
                    continue
                parsed.resource  # noqa: B018  (validates the path before any I/O)
            except DittoError as error:
                answers[index] = error
                continue
            batch.append((index, parsed, auth, _echo_headers(envelope) if respond else {}))
        if not batch:
            return answers
        results = await self._dispatcher.handle_many([(cmd, auth) for _, cmd, auth, _ in batch])
        for (index, cmd, _auth, headers), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                answers[index] = result
            elif respond and cmd.headers.response_required:
                answers[index] = thing_response(cmd, result, headers)
        return answers

    def _send_message(self, envelope: Envelope, auth: AuthContext) -> None:
        """A device's message to a Thing's subscribers. It is sent without waiting for an answer: a source must
        not hold its broker's acknowledgement on a subscriber; answers come back as replies."""
        target = message_target(parse_pointer(envelope.path))
        if target is None:
            raise MessageSubjectInvalid(f"The path '{envelope.path}' does not address a Message.")
        feature_id, direction, subject = target
        all_headers = {str(k).lower(): str(v) for k, v in envelope.headers.items()}
        all_headers.setdefault("correlation-id", new_correlation_id())
        message = ThingMessage(
            envelope.topic.entity_id, direction, subject, feature_id, all_headers, envelope.value
        )
        task = asyncio.get_running_loop().create_task(self._messages.send(message, auth.subjects, 0))
        self._background.add(task)
        task.add_done_callback(self._message_sent)

    def _message_sent(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("message from a connection not delivered: %s", task.exception())


def _echo_headers(envelope: Envelope) -> dict[str, Any]:
    correlation_id = envelope.correlation_id
    return {"correlation-id": correlation_id} if correlation_id else {}
