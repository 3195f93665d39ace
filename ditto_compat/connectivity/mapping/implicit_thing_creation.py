"""The ``ImplicitThingCreation`` mapper (``connectivity-mapping`` "ImplicitThingCreation mapper", Ditto's
``ImplicitThingCreationMessageMapper``): every inbound message becomes a ``createThing`` command built from the
``thing`` option, whose string values may hold ``{{ header:... }}``, ``{{ request:subjectId }}`` and
``{{ time:... }}`` placeholders.

The command carries the resolved ``commandHeaders`` (a header whose placeholder does not resolve is left out),
``allow-policy-lockout`` (option ``allowPolicyLockout``, default true) and always ``if-none-match: *``: it only
ever creates. ``_policy`` and ``_copyPolicyFrom`` in the template stay in the command's value, where the Ditto
Protocol carries them. Outbound it maps nothing.

Where Ditto substitutes placeholders in the template's JSON text, this mapper substitutes them in each string
value: the same result for every template Ditto accepts, without a header value being able to break the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.common import (
    INBOUND_OPTION_PREFIXES,
    compile_option,
    inbound_source,
    option_bool,
    option_object,
)
from ditto_compat.connectivity.mapping.errors import MappingConfigurationInvalid, mapping_failed
from ditto_compat.connectivity.placeholders import PlaceholderSource, Template, contains_placeholder
from ditto_compat.errors import DittoError
from ditto_compat.model.ids import check_policy_id, check_thing_id, is_valid_entity_id
from ditto_compat.protocol.envelope import Envelope, Topic


@dataclass(frozen=True, slots=True)
class CompiledObject:
    """A JSON object of a template: keys may hold placeholders too (Ditto substitutes in the whole text)."""

    pairs: tuple[tuple[str | Template, Any], ...]


def _compile_text(text: str, name: str) -> str | Template:
    return compile_option(text, name, INBOUND_OPTION_PREFIXES) if contains_placeholder(text) else text


def compile_json(value: Any, name: str) -> Any:
    """The same JSON with every string holding a placeholder (value or key) compiled into a Template."""
    if isinstance(value, str):
        return _compile_text(value, name)
    if isinstance(value, dict):
        return CompiledObject(
            tuple(
                (_compile_text(key, name), compile_json(item, f"{name}/{key}")) for key, item in value.items()
            )
        )
    if isinstance(value, list):
        return [compile_json(item, name) for item in value]
    return value


def resolve_json(value: Any, source: PlaceholderSource, *, keep_unresolved: bool = False) -> Any:
    """The template with its placeholders resolved; an unresolvable one fails the message, as in Ditto, unless
    ``keep_unresolved`` keeps it as written."""
    if isinstance(value, Template):
        resolved = value.resolve(source)
        if resolved is None:
            if keep_unresolved:
                return value.text
            raise mapping_failed(f"The placeholder in '{value.text}' could not be resolved.")
        return resolved
    if isinstance(value, CompiledObject):
        return {
            resolve_json(key, source, keep_unresolved=keep_unresolved): resolve_json(
                item, source, keep_unresolved=keep_unresolved
            )
            for key, item in value.pairs
        }
    if isinstance(value, list):
        return [resolve_json(item, source, keep_unresolved=keep_unresolved) for item in value]
    return value


def _check_id(value: Any, option: str, check: Any) -> None:
    if not isinstance(value, str):
        raise MappingConfigurationInvalid(f"The mapping option '{option}' must be a string.")
    if not contains_placeholder(value):
        try:
            check(value)
        except DittoError as error:
            raise MappingConfigurationInvalid(
                f"The mapping option '{option}' is invalid: {error.message}", "Make sure to use a valid ID."
            ) from None


class ImplicitThingCreationMapper:
    alias = "ImplicitThingCreation"

    def __init__(self, options: Mapping[str, Any], *, connection_id: str) -> None:
        self.connection_id = connection_id
        thing = option_object(options, "thing")
        if thing is None:
            raise MappingConfigurationInvalid(
                "The mapping option 'thing' is mandatory for ImplicitThingCreation."
            )
        if "thingId" not in thing:
            raise MappingConfigurationInvalid("The mapping option 'thing/thingId' is mandatory.")
        _check_id(thing["thingId"], "thing/thingId", check_thing_id)
        if "policyId" in thing:
            _check_id(thing["policyId"], "thing/policyId", check_policy_id)
        self.thing = compile_json(thing, "thing")
        headers = option_object(options, "commandHeaders") or {"If-None-Match": "*"}
        self.command_headers = {
            key: compile_option(
                value if isinstance(value, str) else str(value),
                f"commandHeaders/{key}",
                INBOUND_OPTION_PREFIXES,
            )
            for key, value in headers.items()
        }
        self.allow_policy_lockout = option_bool(options, "allowPolicyLockout", True)

    def map_incoming(self, message: ExternalMessage) -> list[Envelope]:
        source = inbound_source(message, self.connection_id)
        thing = resolve_json(self.thing, source)
        thing_id = thing.get("thingId")
        if not isinstance(thing_id, str) or not is_valid_entity_id(thing_id):
            raise mapping_failed(f"The resolved thingId '{thing_id}' is not a valid Thing ID.")
        headers: dict[str, Any] = {}
        for key, template in self.command_headers.items():
            value = template.resolve(source)
            if value is not None:
                headers[key] = value
        for key in [k for k in headers if k.lower() in ("if-none-match", "allow-policy-lockout")]:
            del headers[key]
        headers["if-none-match"] = "*"
        headers["allow-policy-lockout"] = self.allow_policy_lockout
        namespace, _, name = thing_id.partition(":")
        topic = Topic(namespace, name, "things", "twin", "commands", "create")
        return [Envelope(topic=topic, headers=headers, path="/", value=thing)]

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]:
        return []
