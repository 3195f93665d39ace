"""Policy signals in the Ditto Protocol (``protocol-specification-policies*``).

``<ns>/<name>/policies/commands/<create|modify|retrieve|delete>`` with a Ditto path (``/``,
``/entries[/label[/subjects[/id]|/resources[/key]|/<field>]]``, ``/imports[/id[/<field>]]``) becomes the same
:class:`PolicyCommand` as the HTTP request on that sub-path; the path is read by the same table
(``domain/policy_resources.py``), so subject ids and resource keys with ``/`` are one key here too
(``/entries/owner/resources/thing:/features``). Responses keep the topic and path, as for Things; errors use
:func:`ditto_compat.protocol.things.error_envelope`, which keeps the ``policies`` group.
"""

from __future__ import annotations

from typing import Any

from ditto_compat.domain.policy_commands import PolicyCommand, parse_policy_view
from ditto_compat.domain.policy_resources import DELETABLE, PolicyKind, parse_ditto_path
from ditto_compat.domain.things import Outcome
from ditto_compat.errors import DittoError, JsonFieldMissing, ResourceNotFound, UnknownPath, UnknownTopicPath
from ditto_compat.model.ids import check_policy_id
from ditto_compat.model.pointer import MISSING
from ditto_compat.protocol.envelope import JSON, Envelope, Topic, answer_headers, header_value
from ditto_compat.protocol.things import command_headers_of, fields_of

POLICY_COMMAND_ACTIONS = ("create", "modify", "retrieve", "delete")


def _unknown_path(env: Envelope) -> DittoError:
    return UnknownPath(
        f"The path '{env.path}' does not correspond to any known command, response or event "
        f"of the topic '{env.topic}'."
    )


def policy_command(env: Envelope) -> PolicyCommand:
    """The Policy command of a ``policies/commands/<action>`` envelope."""
    topic = env.topic
    if topic.group != "policies" or topic.criterion != "commands":
        raise UnknownTopicPath(f"The topic path '{topic}' is not a Policy command.")
    action = topic.action or ""
    if action not in POLICY_COMMAND_ACTIONS:
        raise UnknownTopicPath(
            f"The topic path '{topic}' is not supported: Policies have no '{action}' command.",
            f"Use one of {', '.join(POLICY_COMMAND_ACTIONS)}.",
        )
    policy_id = check_policy_id(topic.entity_id)
    try:
        resource = parse_ditto_path(env.path)
    except ResourceNotFound:
        raise _unknown_path(env) from None
    # creation is of a whole policy; Ditto has no delete command for the collections (DeleteSubjects etc.)
    if (action == "create" and resource.kind is not PolicyKind.POLICY) or (
        action == "delete" and resource.kind not in DELETABLE
    ):
        raise _unknown_path(env)
    value: Any = MISSING
    if action in ("create", "modify"):
        if env.value is MISSING:
            raise _value_missing(action)
        value = env.value
    view = header_value(env.headers, "policy-view")
    return PolicyCommand(
        action=action,
        policy_id=policy_id,
        resource=resource,
        value=value,
        headers=command_headers_of(env),
        fields=fields_of(env),
        resolved=parse_policy_view(view if isinstance(view, str) else None),
    )


def _value_missing(action: str) -> DittoError:
    return JsonFieldMissing(
        f"The JSON object's field '/value' is mandatory for a '{action}' command!",
        "Send the new value of the resource at the command's path in 'value'.",
    )


def policy_topic(policy_id: str, criterion: str, action: str | None) -> Topic:
    namespace, _, name = policy_id.partition(":")
    return Topic(namespace, name, "policies", None, criterion, action)


def policy_response(cmd: PolicyCommand, outcome: Outcome, headers: dict[str, Any]) -> Envelope:
    """The response to ``cmd``: its topic and Ditto path, ``status``, ``value`` for 200 and 201, and the
    command's ``headers`` (processing instructions dropped) with ``correlation-id``,
    ``response-required: false`` and the ``etag`` of the outcome."""
    has_value = outcome.status in (200, 201) and outcome.value is not MISSING
    out = answer_headers(
        headers, correlation_id=cmd.headers.correlation_id, content_type=JSON if has_value else None
    )
    if outcome.etag:
        out["etag"] = outcome.etag
    return Envelope(
        topic=policy_topic(cmd.policy_id, "commands", cmd.action),
        headers=out,
        path=cmd.resource.ditto_path,
        value=outcome.value if has_value else MISSING,
        status=outcome.status,
    )
