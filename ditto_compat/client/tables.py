"""Plain-text tables for a terminal: things, policies, connections and key/value views.

Pure functions from JSON values to text, so that the layout is tested without a server. Columns are separated
by two spaces and padded to their widest cell; long cells are cut with an ellipsis so that one huge attribute
does not push the other columns off the screen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

THING_COLUMNS = ("thingId", "policyId", "definition", "attributes")
CONNECTION_COLUMNS = ("id", "name", "type", "status", "liveStatus")
POLICY_COLUMNS = ("entry", "subjects", "resource", "grant", "revoke")
# Cut cells beyond this many characters; ids are shorter than this in practice, JSON blobs are not.
MAX_CELL = 60
ELLIPSIS = "…"


def compact(value: Any) -> str:
    """One line for any JSON value: strings as they are, ``null`` as nothing, the rest as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def truncate(text: str, width: int = MAX_CELL) -> str:
    """``text`` on one line and at most ``width`` characters, the cut marked with an ellipsis."""
    text = " ".join(text.split("\n"))
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def compact_attributes(attributes: Any) -> str:
    """``location=hall-3, floor=2, tags=["a"]``: the attributes column of the things table."""
    if not isinstance(attributes, Mapping):
        return compact(attributes)
    return ", ".join(f"{key}={compact(value)}" for key, value in attributes.items())


def render(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table with one header line; cells are cut to :data:`MAX_CELL` and padded to the column width."""
    cells = [[truncate(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [headers, *cells]
    ]
    return "\n".join(lines)


def _columns_of(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The top-level keys of ``items`` in order of first appearance (the columns of a ``--fields`` table)."""
    seen: dict[str, None] = {}
    for item in items:
        for key in item:
            seen.setdefault(key, None)
    return list(seen)


def things_table(things: Sequence[Any], *, selected_fields: bool = False) -> str:
    """One row per thing; with ``--fields`` the columns are the fields that came back instead of the default
    thingId, policyId, definition and attributes."""
    items = [t for t in things if isinstance(t, Mapping)]
    columns = _columns_of(items) if selected_fields else list(THING_COLUMNS)
    if not columns:
        columns = list(THING_COLUMNS)

    def cell(item: Mapping[str, Any], column: str) -> str:
        value = item.get(column)
        return compact_attributes(value) if column == "attributes" else compact(value)

    return render(columns, ([cell(item, c) for c in columns] for item in items))


def is_thing(value: Any) -> bool:
    """Whether a value looks like a thing (or a projection of one), so that a table makes sense for it."""
    return isinstance(value, Mapping) and "thingId" in value


def _object(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one: a table shows what is there and skips the rest."""
    return value if isinstance(value, Mapping) else {}


def policy_table(policy: Any) -> str:
    """One row per resource of each policy entry, with the entry's label and subjects on its first row, so
    that long resource lists never get cut."""
    policy = _object(policy)
    rows = []
    for label, entry in _object(policy.get("entries")).items():
        entry = _object(entry)
        subjects = ", ".join(str(s) for s in _object(entry.get("subjects")))
        resources = _object(entry.get("resources")) or {"": {}}
        for index, (resource, rule) in enumerate(resources.items()):
            rule = _object(rule)
            first = index == 0
            rows.append(
                [
                    str(label) if first else "",
                    subjects if first else "",
                    str(resource),
                    ",".join(str(p) for p in rule.get("grant") or []),
                    ",".join(str(p) for p in rule.get("revoke") or []),
                ]
            )
    title = f"policy {compact(policy.get('policyId'))}".rstrip()
    return title + "\n" + render(list(POLICY_COLUMNS), rows)


def connection_row(connection: Mapping[str, Any], status: Mapping[str, Any] | None) -> list[str]:
    live = status.get("liveStatus") if status is not None else None
    return [
        compact(connection.get("id")),
        compact(connection.get("name")),
        compact(connection.get("connectionType")),
        compact(connection.get("connectionStatus")),
        compact(live),
    ]


def connections_table(
    connections: Sequence[Any], statuses: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    """id, name, type, status (the desired ``connectionStatus``) and ``liveStatus`` (what it is right now)."""
    statuses = statuses or {}
    rows = [connection_row(c, statuses.get(str(c.get("id")))) for c in connections if isinstance(c, Mapping)]
    return render(list(CONNECTION_COLUMNS), rows)


def key_value_table(document: Any) -> str:
    """A ``field  value`` table of a JSON object's top-level members (e.g. a connection's status)."""
    if not isinstance(document, Mapping):
        return compact(document)
    return render(["field", "value"], ([str(key), compact(value)] for key, value in document.items()))


def _feature_cell(feature: Any) -> str:
    """``value=23.5, unit=°C | desired: value=21``: a feature's properties and desired properties."""
    if not isinstance(feature, Mapping):
        return compact(feature)
    parts = []
    if "definition" in feature:
        parts.append(f"definition: {compact(feature['definition'])}")
    if "properties" in feature:
        parts.append(compact_attributes(feature["properties"]))
    if "desiredProperties" in feature:
        parts.append(f"desired: {compact_attributes(feature['desiredProperties'])}")
    return " | ".join(parts)


def thing_detail_table(thing: Mapping[str, Any]) -> str:
    """One thing as ``field  value`` rows: its ids and definition, each attribute and each feature."""
    rows: list[list[str]] = []
    for key, value in thing.items():
        if key == "attributes" and isinstance(value, Mapping):
            rows.extend([f"attributes/{name}", compact(v)] for name, v in value.items())
        elif key == "features" and isinstance(value, Mapping):
            rows.extend([f"features/{name}", _feature_cell(f)] for name, f in value.items())
        else:
            rows.append([key, compact(value)])
    return render(["field", "value"], rows)
