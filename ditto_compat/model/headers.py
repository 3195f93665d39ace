"""Ditto headers that steer a command (``httpapi-concepts``, ``basic-conditional-requests``, ``DittoHeaderDefinition``).

Parsed once by the adapter (HTTP, WebSocket, connection) into :class:`CommandHeaders`, so that the domain never
sees raw header strings.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ditto_compat.errors import HeaderInvalid, TimeoutInvalid

DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 60.0

_TIMEOUT_RE = re.compile(r"^(\d+)(ms|s|m)?$", re.ASCII)


def parse_timeout(text: str, *, maximum: float = MAX_TIMEOUT_S) -> float:
    """``42`` and ``42s`` are seconds, ``250ms`` milliseconds, ``1m`` a minute; at most ``maximum`` seconds."""
    match = _TIMEOUT_RE.match(text)
    if match is None:
        raise TimeoutInvalid(f"The timeout <{text}> is invalid.")
    amount = float(match.group(1))
    unit = match.group(2) or "s"
    seconds = amount / 1000.0 if unit == "ms" else amount * 60.0 if unit == "m" else amount
    if seconds > maximum:
        raise TimeoutInvalid(f"The timeout <{text}> exceeds the maximum of {maximum:g}s.")
    return seconds


class IfEqual(Enum):
    UPDATE = "update"
    SKIP = "skip"
    SKIP_MINIMIZING_MERGE = "skip-minimizing-merge"


def parse_if_equal(text: str) -> IfEqual:
    try:
        return IfEqual(text.strip().lower())
    except ValueError:
        raise HeaderInvalid(
            f"The value '{text}' of the header 'if-equal' is not valid.",
            "Valid values are 'update', 'skip' and 'skip-minimizing-merge'.",
        ) from None


def parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise HeaderInvalid(f"The value '{text}' of the header '{name}' is not a valid boolean.")


@dataclass(frozen=True, slots=True)
class EntityTagMatcher:
    """An ``If-Match`` / ``If-None-Match`` value: ``*`` or a list of entity tags.

    RFC 7232: ``If-Match`` compares strongly (a weak tag never matches), ``If-None-Match`` weakly."""

    any: bool
    tags: tuple[str, ...]
    strong: bool = False

    def matches(self, current: str | None) -> bool:
        """Whether the current entity tag (``None`` when the resource does not exist) matches."""
        if current is None:
            return False
        if self.any:
            return True
        if self.strong:
            return not current.startswith("W/") and current in self.tags
        plain = _strip_weak(current)
        return any(_strip_weak(tag) == plain for tag in self.tags)


def _strip_weak(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


_TAG_RE = re.compile(r'\s*((?:W/)?"[^"]*")\s*(?:,|$)')


def parse_entity_tags(name: str, text: str) -> EntityTagMatcher:
    if text.strip() == "*":
        return EntityTagMatcher(any=True, tags=())
    tags: list[str] = []
    pos = 0
    stripped = text.strip()
    while pos < len(stripped):
        match = _TAG_RE.match(stripped, pos)
        if match is None:
            raise HeaderInvalid(f"The value '{text}' of the header '{name}' is not a valid entity-tag list.")
        tags.append(match.group(1))
        pos = match.end()
    if not tags:
        raise HeaderInvalid(f"The value '{text}' of the header '{name}' is not a valid entity-tag list.")
    return EntityTagMatcher(any=False, tags=tuple(tags), strong=name.strip().lower() == "if-match")


def new_correlation_id() -> str:
    """A UUID-shaped id for requests that brought none. Correlation ids need to be unique, not secret, so
    they come from the fast PRNG rather than from ``os.urandom`` (a system call on every request)."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


# Not frozen, for speed (a frozen init costs 1 us, once per command): treat it as immutable.
@dataclass(slots=True)
class CommandHeaders:
    """What a command carries besides its payload."""

    correlation_id: str = field(default_factory=new_correlation_id)
    response_required: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S
    if_match: EntityTagMatcher | None = None
    if_none_match: EntityTagMatcher | None = None
    if_equal: IfEqual = IfEqual.UPDATE
    allow_policy_lockout: bool = False
    dry_run: bool = False


# The headers that steer a command; an adapter collects these (HTTP also from query parameters) and hands them to
# :func:`command_headers_from`
COMMAND_HEADER_NAMES = (
    "correlation-id",
    "response-required",
    "timeout",
    "if-match",
    "if-none-match",
    "if-equal",
    "allow-policy-lockout",
    "dry-run",
)


def command_headers_from(headers: Mapping[str, str], correlation_id: str | None = None) -> CommandHeaders:
    """Parse the headers a command carries, whatever the transport (HTTP headers, a Ditto Protocol envelope).

    Header names compare case-insensitively (Ditto headers are case-insensitive and case-preserving). An explicit
    ``correlation_id`` wins over the mapping's; without either the command gets a new one."""
    return command_headers_from_lowered(
        {name.lower(): value for name, value in headers.items()}, correlation_id
    )


def command_headers_from_lowered(
    values: Mapping[str, str], correlation_id: str | None = None
) -> CommandHeaders:
    """:func:`command_headers_from` for headers whose names are lower case already."""
    kwargs: dict[str, Any] = {}
    correlation_id = correlation_id or values.get("correlation-id")
    if correlation_id:
        kwargs["correlation_id"] = correlation_id
    if (value := values.get("response-required")) is not None:
        kwargs["response_required"] = parse_bool("response-required", value)
    if (value := values.get("timeout")) is not None:
        kwargs["timeout_s"] = parse_timeout(value)
    if (value := values.get("if-match")) is not None:
        kwargs["if_match"] = parse_entity_tags("if-match", value)
    if (value := values.get("if-none-match")) is not None:
        kwargs["if_none_match"] = parse_entity_tags("if-none-match", value)
    if (value := values.get("if-equal")) is not None:
        kwargs["if_equal"] = parse_if_equal(value)
    if (value := values.get("allow-policy-lockout")) is not None:
        kwargs["allow_policy_lockout"] = parse_bool("allow-policy-lockout", value)
    if (value := values.get("dry-run")) is not None:
        kwargs["dry_run"] = parse_bool("dry-run", value)
    return CommandHeaders(**kwargs)
