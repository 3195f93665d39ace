"""The typed AST of Ditto's RQL (``basic-rql``; Ditto's ``RqlPredicateParser`` and ``RqlOptionParser``).

One AST, three uses with the same semantics: the in-memory evaluator (``condition``, event and connection
filters), the MongoDB filter translation and the SQLite translation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ditto_compat.model.pointer import Pointer

# JSON scalars as RQL literals; ``time:now`` is resolved to an ISO-8601 string when the query is evaluated.
Literal_ = str | int | float | bool | None

CompareOp = Literal["eq", "ne", "gt", "ge", "lt", "le", "like", "ilike"]


@dataclass(frozen=True, slots=True)
class Field:
    """A property such as ``attributes/location`` or ``features/*/properties/value``: its pointer. Special
    roots (``thingId``, ``namespace``, ``policyId``, ``_revision``, ``_created``, ``_modified``,
    ``definition``) are single-key pointers."""

    pointer: Pointer


@dataclass(frozen=True, slots=True)
class TimeNow:
    """The placeholder literal ``time:now`` (or ``time:now_epoch_millis`` when ``epoch_millis``)."""

    epoch_millis: bool = False


Value = Literal_ | TimeNow


@dataclass(frozen=True, slots=True)
class Compare:
    op: CompareOp
    field: Field
    value: Value


@dataclass(frozen=True, slots=True)
class In:
    field: Field
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Exists:
    field: Field


@dataclass(frozen=True, slots=True)
class Empty:
    """``empty(x)``: absent, null, ``[]``, ``{}`` or ``""`` (not 0 or false)."""

    field: Field


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Query


Query = Compare | In | Exists | Empty | And | Or | Not


@dataclass(frozen=True, slots=True)
class SortKey:
    field: Field
    ascending: bool


@dataclass(frozen=True, slots=True)
class Options:
    """``option=sort(+thingId,-attributes/x),size(25),cursor(...)`` or the deprecated ``limit(offset,count)``."""

    sort: tuple[SortKey, ...] = ()
    size: int | None = None
    cursor: str | None = None
    limit: tuple[int, int] | None = None
