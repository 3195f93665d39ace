"""The searchable fields of a Thing (``basic-search``, ``basic-rql`` "Query property"; Ditto's
``ThingsFieldExpressionFactoryImpl``/``FieldExpressionUtil`` and the ``simple-field-mappings`` of ``search.conf``).

One document shape is seen by everyone who evaluates RQL against a Thing: :func:`searchable_document` builds it
(the Thing JSON plus ``thingId``, ``namespace``, ``_revision``, ``_created``, ``_modified``), the in-memory
evaluator reads it, search sorts and cursors take their values from it, and the database translations index
the same paths.

Which fields a query may name depends on the operator, as in Ditto's field expression factory:

- everywhere: ``thingId``, ``namespace``, ``policyId``, ``definition``, ``_revision``, ``_created``,
  ``_modified``, ``_metadata`` and ``_metadata/**``, ``attributes/<at least one key>``,
  ``features/<id|*>/properties/<key...>``, ``features/<id|*>/desiredProperties/<key...>``;
- filters and ``exists``/``empty`` also: ``features/<id|*>/definition``;
- only ``exists``/``empty``: ``features/<id|*>``, ``features/<id|*>/properties``,
  ``features/<id|*>/desiredProperties``.

Sorting additionally refuses the feature wildcard ``*``: Ditto accepts it but sorts by a path that never holds a
value, so such a sort only ever orders by the tie-breaker; refusing it says so instead of pretending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ditto_compat.errors import RqlExpressionInvalid, SearchOptionInvalid
from ditto_compat.model.pointer import Pointer, format_pointer
from ditto_compat.rql.ast import And, Compare, Empty, Exists, In, Not, Or, Query, SortKey

Use = Literal["filter", "exists", "sort"]

THING_ID = "thingId"
NAMESPACE = "namespace"
POLICY_ID = "policyId"
DEFINITION = "definition"
REVISION = "_revision"
CREATED = "_created"
MODIFIED = "_modified"
METADATA = "_metadata"
ATTRIBUTES = "attributes"
FEATURES = "features"
PROPERTIES = "properties"
DESIRED_PROPERTIES = "desiredProperties"
FEATURE_WILDCARD = "*"

# Ditto's simple-field-mappings: whole-property names, nothing may follow them (``thingId/x`` is unknown).
SIMPLE_FIELDS = frozenset({THING_ID, NAMESPACE, POLICY_ID, DEFINITION, REVISION, CREATED, MODIFIED})


def searchable_document(
    thing: Mapping[str, Any] | None,
    thing_id: str,
    revision: int,
    created: str | None,
    modified: str | None,
) -> dict[str, Any]:
    """The document RQL sees for one Thing: its JSON (already READ-filtered when a caller's view matters) plus
    ``thingId``, ``namespace`` (``namespace`` is search-only; ``_namespace`` is for field selection),
    ``_revision``, ``_created`` and ``_modified``. A shallow copy: the Thing JSON is not changed."""
    document: dict[str, Any] = dict(thing) if thing else {}
    document[THING_ID] = thing_id
    # the namespace is what precedes the first colon of the id (``basic-namespaces-and-names``)
    document[NAMESPACE] = thing_id.split(":", 1)[0]
    document[REVISION] = revision
    if created is not None:
        document[CREATED] = created
    if modified is not None:
        document[MODIFIED] = modified
    return document


def field_problem(pointer: Pointer, use: Use) -> str | None:
    """Why ``pointer`` cannot be used as a ``filter`` (comparison, ``in``), ``exists`` (also ``empty``) or
    ``sort`` field, or None when it can."""
    if not pointer:
        return "the property is empty"
    root, depth = pointer[0], len(pointer)
    if root in SIMPLE_FIELDS:
        return None if depth == 1 else f"'{root}' has no sub-fields"
    if root == METADATA:
        return None
    if root == ATTRIBUTES:
        return None if depth >= 2 else "name an attribute, e.g. 'attributes/location'"
    if root == FEATURES:
        return _feature_problem(pointer, use)
    return "it is not a searchable field"


def _feature_problem(pointer: Pointer, use: Use) -> str | None:
    depth = len(pointer)
    if depth == 1:
        return "name a feature, e.g. 'features/lamp' or 'features/*'"
    if use == "sort" and pointer[1] == FEATURE_WILDCARD:
        return "the feature wildcard '*' cannot be sorted by"
    if depth == 2:
        return None if use == "exists" else "a feature can only be tested with exists or empty"
    part = pointer[2]
    if part == DEFINITION:
        if depth > 3:
            return "a feature definition has no sub-fields"
        return "a feature definition cannot be sorted by" if use == "sort" else None
    if part in (PROPERTIES, DESIRED_PROPERTIES):
        if depth == 3 and use != "exists":
            return f"name a property, e.g. 'features/{pointer[1]}/{part}/value'"
        return None
    return "features have only 'definition', 'properties' and 'desiredProperties'"


def _property_text(pointer: Pointer) -> str:
    return format_pointer(pointer)[1:]


def validate_query(query: Query) -> None:
    """Raise :class:`RqlExpressionInvalid` (400, as Ditto's ``Unknown property name``) if the query names a field
    search cannot address. Conditions and event filters are validated the same way, as Ditto does."""
    stack: list[Query] = [query]
    while stack:
        node = stack.pop()
        if isinstance(node, Compare | In):
            _check(node.field.pointer, "filter")
        elif isinstance(node, Exists | Empty):
            _check(node.field.pointer, "exists")
        elif isinstance(node, And | Or):
            stack.extend(node.children)
        elif isinstance(node, Not):
            stack.append(node.child)


def _check(pointer: Pointer, use: Use) -> None:
    problem = field_problem(pointer, use)
    if problem is not None:
        raise RqlExpressionInvalid(f"Unknown property name: {_property_text(pointer)} ({problem}).")


def validate_sort(keys: Iterable[SortKey]) -> None:
    """Raise :class:`SearchOptionInvalid` (400 ``thing-search:search.option.invalid``, as Ditto turns the field
    factory's ``IllegalArgumentException`` into an ``InvalidOptionException``) for a sort key search cannot
    sort by."""
    for key in keys:
        problem = field_problem(key.field.pointer, "sort")
        if problem is not None:
            raise SearchOptionInvalid(
                f"Unknown property name: {_property_text(key.field.pointer)} ({problem}).",
                "See https://www.eclipse.dev/ditto/basic-rql.html#rql-sorting for the fields you can sort by.",
            )
