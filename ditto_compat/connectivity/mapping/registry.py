"""Which mapper a mapping definition names (``connectivity-mapping`` "Built-in mappers", "Using multiple mappers",
"Mapping conditions"): :func:`create_mapper` for a ``mappingEngine`` (or a built-in alias used directly in
``payloadMapping``) and its options, :func:`compile_conditions` / :func:`conditions_hold` for
``incomingConditions`` and ``outgoingConditions``.

The JavaScript engine is imported only when a definition uses it, so that this module stays free of V8.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ditto_compat.connectivity.mapping.base import MessageMapper
from ditto_compat.connectivity.mapping.cloud_events import CloudEventsMapper
from ditto_compat.connectivity.mapping.connection_status import ConnectionStatusMapper
from ditto_compat.connectivity.mapping.ditto import DittoMapper
from ditto_compat.connectivity.mapping.errors import MappingConfigurationInvalid
from ditto_compat.connectivity.mapping.implicit_thing_creation import ImplicitThingCreationMapper
from ditto_compat.connectivity.mapping.normalized import NormalizedMapper
from ditto_compat.connectivity.mapping.raw_message import RawMessageMapper
from ditto_compat.connectivity.mapping.update_twin import UpdateTwinWithLiveResponseMapper
from ditto_compat.connectivity.placeholders import (
    CONNECTION_PREFIXES,
    Condition,
    PlaceholderSource,
    compile_condition,
)
from ditto_compat.errors import DittoError

ENGINES = (
    "Ditto",
    "Normalized",
    "ImplicitThingCreation",
    "RawMessage",
    "ConnectionStatus",
    "UpdateTwinWithLiveResponse",
    "CloudEvents",
    "JavaScript",
)
# Ditto resolves aliases case-insensitively enough that "connectionStatus" works (the doc's own example)
_BY_LOWER = {engine.lower(): engine for engine in ENGINES}
# engines that cannot work without options, so cannot be named directly in payloadMapping
MANDATORY_OPTIONS = frozenset({"ImplicitThingCreation", "ConnectionStatus"})

DEFAULT_MAPPER = "Ditto"


def engine_name(engine: str) -> str:
    """The canonical name of an engine or alias; unknown ones raise ``connection.configuration.invalid``."""
    canonical = _BY_LOWER.get(engine.strip().lower())
    if canonical is None:
        raise MappingConfigurationInvalid(
            f"The mapping engine '{engine}' is not known.",
            f"Use one of: {', '.join(ENGINES)}.",
        )
    return canonical


def create_mapper(engine: str, options: Mapping[str, Any], *, connection_id: str) -> MessageMapper:
    """A configured mapper; bad options raise ``connectivity:connection.configuration.invalid`` (400)."""
    name = engine_name(engine)
    if not isinstance(options, Mapping):
        raise MappingConfigurationInvalid("The 'options' of a mapping definition must be a JSON object.")
    if name == "Ditto":
        return DittoMapper()
    if name == "Normalized":
        return NormalizedMapper(options)
    if name == "ImplicitThingCreation":
        return ImplicitThingCreationMapper(options, connection_id=connection_id)
    if name == "RawMessage":
        return RawMessageMapper(options, connection_id=connection_id)
    if name == "ConnectionStatus":
        return ConnectionStatusMapper(options, connection_id=connection_id)
    if name == "UpdateTwinWithLiveResponse":
        return UpdateTwinWithLiveResponseMapper(options, connection_id=connection_id)
    if name == "CloudEvents":
        return CloudEventsMapper()
    from ditto_compat.connectivity.mapping.javascript import JavaScriptMapper

    return JavaScriptMapper(options, connection_id=connection_id)


def compile_conditions(conditions: Mapping[str, str] | Iterable[str]) -> tuple[Condition, ...]:
    """``incomingConditions`` / ``outgoingConditions`` (a map of name to condition), compiled once; a bad
    condition makes the definition invalid."""
    texts = conditions.values() if isinstance(conditions, Mapping) else conditions
    compiled: list[Condition] = []
    for text in texts:
        if not isinstance(text, str):
            raise MappingConfigurationInvalid("A mapping condition must be a string.")
        try:
            compiled.append(compile_condition(text, CONNECTION_PREFIXES))
        except DittoError as error:
            raise MappingConfigurationInvalid(
                f"The mapping condition '{text}' is invalid: {error.message}", error.description
            ) from None
    return tuple(compiled)


def conditions_hold(conditions: Iterable[Condition | str], source: PlaceholderSource) -> bool:
    """All conditions hold (no condition: true), as Ditto requires before running a mapper."""
    for condition in conditions:
        compiled = compile_conditions([condition])[0] if isinstance(condition, str) else condition
        if not compiled.holds(source):
            return False
    return True
