"""The terminal tables of the management CLI: columns, compact cells, cutting, policies and connections."""

from __future__ import annotations

from ditto_compat.client.tables import (
    MAX_CELL,
    compact,
    compact_attributes,
    connections_table,
    is_thing,
    key_value_table,
    policy_table,
    render,
    thing_detail_table,
    things_table,
    truncate,
)


def test_compact_renders_each_json_type_on_one_line() -> None:
    cases = [
        (None, ""),
        ("hall-3", "hall-3"),
        (2, "2"),
        (True, "true"),
        ([1, "a"], '[1,"a"]'),
        ({"lat": 1.5, "lon": 2}, '{"lat":1.5,"lon":2}'),
        ("°C", "°C"),
    ]
    for value, expected in cases:
        assert compact(value) == expected, value


def test_truncate_marks_the_cut_and_keeps_one_line() -> None:
    assert truncate("short") == "short"
    cut = truncate("x" * 100, 10)
    assert cut == "x" * 9 + "…"
    assert len(cut) == 10
    assert truncate("a\nb") == "a b"


def test_attributes_column_is_key_equals_value() -> None:
    attributes = {"location": "hall-3", "floor": 2, "tags": ["a", "b"], "gps": {"lat": 1}}
    assert compact_attributes(attributes) == 'location=hall-3, floor=2, tags=["a","b"], gps={"lat":1}'
    assert compact_attributes(None) == ""


def test_things_table_has_the_default_columns_and_pads_them() -> None:
    things = [
        {
            "thingId": "org.acme:s1",
            "policyId": "org.acme:p",
            "definition": "org.acme:sensor:1.0",
            "attributes": {"location": "hall-3"},
            "features": {"t": {}},
        },
        {"thingId": "org.acme:long-thing-id", "policyId": "org.acme:p"},
    ]
    lines = things_table(things).splitlines()
    assert lines[0].split() == ["thingId", "policyId", "definition", "attributes"]
    assert lines[1].split() == ["org.acme:s1", "org.acme:p", "org.acme:sensor:1.0", "location=hall-3"]
    assert lines[2].split() == ["org.acme:long-thing-id", "org.acme:p"]
    # columns line up: every value of the second column starts where its header does
    column = lines[0].index("policyId")
    assert lines[1][column:].startswith("org.acme:p")
    assert lines[2][column:].startswith("org.acme:p")
    # no trailing blanks on rows with empty last columns
    assert lines[2] == lines[2].rstrip()


def test_things_table_with_fields_shows_what_came_back() -> None:
    things = [{"thingId": "a:1", "_revision": 3}, {"thingId": "a:2", "_revision": 7, "attributes": {"x": 1}}]
    lines = things_table(things, selected_fields=True).splitlines()
    assert lines[0].split() == ["thingId", "_revision", "attributes"]
    assert lines[2].split() == ["a:2", "7", "x=1"]


def test_long_cells_are_cut_to_the_maximum_width() -> None:
    things = [{"thingId": "a:1", "attributes": {"blob": "y" * 500}}]
    row = things_table(things).splitlines()[1]
    cell = row.split("  ")[-1]
    assert len(cell) == MAX_CELL
    assert cell.endswith("…")


def test_thing_detail_shows_each_attribute_and_feature() -> None:
    thing = {
        "thingId": "org.acme:s1",
        "policyId": "org.acme:s1",
        "attributes": {"location": "hall-3", "floor": 2},
        "features": {
            "temperature": {"properties": {"value": 21.5}, "desiredProperties": {"value": 20}},
            "door": {"definition": ["org.acme:door:1"], "properties": {"open": False}},
        },
    }
    rows = [line.split(None, 1) for line in thing_detail_table(thing).splitlines()]
    assert rows[0] == ["field", "value"]
    assert ["attributes/location", "hall-3"] in rows
    assert ["attributes/floor", "2"] in rows
    assert ["features/temperature", "value=21.5 | desired: value=20"] in rows
    assert ["features/door", 'definition: ["org.acme:door:1"] | open=false'] in rows


def test_is_thing() -> None:
    assert is_thing({"thingId": "a:b"})
    assert not is_thing({"properties": {}})
    assert not is_thing([{"thingId": "a:b"}])
    assert not is_thing(3)


def test_policy_table_has_one_row_per_resource() -> None:
    policy = {
        "policyId": "org.acme:p",
        "entries": {
            "owner": {
                "subjects": {"nginx:alice": {"type": "basic"}, "nginx:bob": {"type": "basic"}},
                "resources": {
                    "thing:/": {"grant": ["READ", "WRITE"], "revoke": []},
                    "thing:/attributes/secret": {"grant": [], "revoke": ["READ"]},
                },
            },
            "empty": {"subjects": {}, "resources": {}},
        },
    }
    lines = policy_table(policy).splitlines()
    assert lines[0] == "policy org.acme:p"
    assert lines[1].split() == ["entry", "subjects", "resource", "grant", "revoke"]
    assert lines[2].split() == ["owner", "nginx:alice,", "nginx:bob", "thing:/", "READ,WRITE"]
    assert lines[3].split() == ["thing:/attributes/secret", "READ"]
    assert lines[3].index("thing:/attributes/secret") == lines[1].index("resource")
    assert lines[3].index("READ") == lines[1].index("revoke")
    assert lines[4].split() == ["empty"]


def test_connections_table_joins_the_live_status() -> None:
    connections = [
        {"id": "c-1", "name": "push", "connectionType": "http-push", "connectionStatus": "closed"},
        {"id": "c-2", "connectionType": "mqtt", "connectionStatus": "open"},
    ]
    lines = connections_table(connections, {"c-1": {"liveStatus": "closed"}}).splitlines()
    assert lines[0].split() == ["id", "name", "type", "status", "liveStatus"]
    assert lines[1].split() == ["c-1", "push", "http-push", "closed", "closed"]
    assert lines[2].split() == ["c-2", "mqtt", "open"]


def test_key_value_table() -> None:
    lines = key_value_table({"connectionId": "c-1", "liveStatus": "failed", "clientStatus": []}).splitlines()
    assert [line.split() for line in lines] == [
        ["field", "value"],
        ["connectionId", "c-1"],
        ["liveStatus", "failed"],
        ["clientStatus", "[]"],
    ]


def test_render_without_rows_is_the_header() -> None:
    assert render(["a", "bb"], []) == "a  bb"
