"""Ditto's connection model (``basic-connections``, jsonschema ``connection.json``): what a connection
definition written for Ditto holds, parsed into frozen dataclasses and rendered back unchanged.

Pure: no broker client, no asyncio. Unknown keys are kept in ``extra`` so that a definition round-trips (GET
returns what was PUT), even for options this server does not act on (``sshTunnel``, ``credentials``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONNECTION_TYPES = ("amqp-091", "amqp-10", "mqtt", "mqtt-5", "kafka", "http-push", "hono")
# The types this server runs; the others are accepted by the model but refused when opened.
SUPPORTED_TYPES = ("amqp-091", "mqtt", "mqtt-5", "kafka", "http-push")
CONNECTION_STATUSES = ("open", "closed")
# Payload mapper aliases usable in ``payloadMapping`` without a ``mappingDefinitions`` entry
# (``connectivity-mapping`` "Built-in mappers"; JavaScript needs options, so only by definition).
BUILTIN_MAPPERS = (
    "Ditto",
    "Normalized",
    "ConnectionStatus",
    "RawMessage",
    "ImplicitThingCreation",
    "UpdateTwinWithLiveResponse",
    "CloudEvents",
)


@dataclass(frozen=True, slots=True)
class Enforcement:
    """``enforcement``: the inbound ``input`` (a placeholder template) must match one of ``filters``."""

    input: str
    filters: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    enabled: bool = True
    address: str | None = None
    header_mapping: Mapping[str, str] = field(default_factory=dict)
    expected_response_types: tuple[str, ...] = ("response", "error")
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Source:
    addresses: tuple[str, ...]
    authorization_context: tuple[str, ...]
    index: int = 0  # position in ``sources``: names the source in logs and metrics
    consumer_count: int = 1
    qos: int | None = None
    enforcement: Enforcement | None = None
    header_mapping: Mapping[str, str] = field(default_factory=dict)
    payload_mapping: tuple[str, ...] = ()
    reply_target: ReplyTarget | None = None
    declared_acks: tuple[str, ...] = ()
    acknowledgement_requests: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TargetTopic:
    """One entry of a target's ``topics``: ``_/_/things/twin/events?namespaces=..&filter=..&extraFields=..``."""

    kind: str  # "twin/events", "live/messages", "live/commands", "live/events", "policies/announcements", ...
    namespaces: frozenset[str] | None = None
    filter: str | None = None
    extra_fields: str | None = None
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    address: str
    topics: tuple[TargetTopic, ...]
    authorization_context: tuple[str, ...]
    index: int = 0
    qos: int | None = None
    header_mapping: Mapping[str, str] = field(default_factory=dict)
    payload_mapping: tuple[str, ...] = ()
    issued_acknowledgement_label: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MappingDefinition:
    """One entry of ``mappingDefinitions``: an engine (``Ditto``, ``JavaScript``, ...) and its options."""

    mapping_engine: str
    options: Mapping[str, Any] = field(default_factory=dict)
    incoming_conditions: Mapping[str, str] = field(default_factory=dict)
    outgoing_conditions: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Connection:
    id: str
    connection_type: str
    connection_status: str  # "open" | "closed": the status the user asked for
    uri: str
    name: str | None = None
    sources: tuple[Source, ...] = ()
    targets: tuple[Target, ...] = ()
    specific_config: Mapping[str, str] = field(default_factory=dict)
    mapping_definitions: Mapping[str, MappingDefinition] = field(default_factory=dict)
    client_count: int = 1
    failover_enabled: bool = True
    validate_certificates: bool = True
    processor_pool_size: int = 5
    tags: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(
        default_factory=dict
    )  # keys kept verbatim (credentials, ca, sshTunnel, ...)
