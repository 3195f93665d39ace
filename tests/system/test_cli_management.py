"""``ditto-compat things|policies|connections ...`` run as a separate process against a real server: what a user
sees on standard output and standard error, and the exit codes scripts rely on (0 ok, 1 Ditto error, 2 usage,
3 unreachable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.live_server import LiveServer, free_port

CLI_TIMEOUT_S = 30.0
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def cli_env(url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without ``DITTO_*`` settings and proxies (a proxy would turn a refused
    loopback connection into its own 502), pointed at ``url``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DITTO_") and k.lower() not in PROXY_VARIABLES
    }
    env["DITTO_URL"] = url
    env.update(extra or {})
    return env


def cli(
    server: LiveServer | str,
    *argv: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    url = server if isinstance(server, str) else server.base_url
    return subprocess.run(
        [sys.executable, "-m", "ditto_compat", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(url, env),
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert result.stderr == ""
    return json.loads(result.stdout)


SENSOR = {
    "definition": "org.acme:sensor:1.0",
    "attributes": {"location": "hall-3", "floor": 2},
    "features": {
        "temperature": {"properties": {"value": 21.5, "unit": "°C"}, "desiredProperties": {"value": 20}}
    },
}


def test_thing_lifecycle(live_server: LiveServer, tmp_path: Path) -> None:
    created = ok_json(cli(live_server, "things", "put", "org.acme:s1", json.dumps(SENSOR)))
    assert created["thingId"] == "org.acme:s1"
    assert created["attributes"] == SENSOR["attributes"]

    thing = ok_json(cli(live_server, "things", "get", "org.acme:s1"))
    assert thing["features"] == SENSOR["features"]
    assert thing["policyId"] == "org.acme:s1"
    feature = ok_json(cli(live_server, "things", "get", "org.acme:s1", "--path", "features/temperature"))
    assert feature == SENSOR["features"]["temperature"]
    selected = ok_json(
        cli(live_server, "things", "get", "org.acme:s1", "--fields", "thingId,attributes/floor")
    )
    assert selected == {"thingId": "org.acme:s1", "attributes": {"floor": 2}}

    # merge patch: null deletes, the rest merges
    patched = cli(
        live_server, "things", "patch", "org.acme:s1", '{"attributes": {"floor": null, "zone": "A"}}'
    )
    assert patched.returncode == 0, patched.stderr
    assert patched.stdout == ""  # 204: JSON mode prints nothing
    attributes = ok_json(cli(live_server, "things", "get", "org.acme:s1", "--path", "attributes"))
    assert attributes == {"location": "hall-3", "zone": "A"}

    # a sub-path from a file, then a whole thing from standard input
    value_file = tmp_path / "value.json"
    value_file.write_text("23.5", encoding="utf-8")
    path = "features/temperature/properties/value"
    put_value = cli(live_server, "things", "put", "org.acme:s1", "--path", path, "-f", str(value_file))
    assert put_value.returncode == 0, put_value.stderr
    assert ok_json(cli(live_server, "things", "get", "org.acme:s1", "--path", path)) == 23.5
    from_stdin = cli(
        live_server, "things", "put", "org.acme:s2", "-f", "-", stdin='{"attributes": {"zone": "B"}}'
    )
    assert ok_json(from_stdin)["attributes"] == {"zone": "B"}

    found = ok_json(cli(live_server, "things", "search", "--filter", 'eq(attributes/zone,"A")'))
    assert [t["thingId"] for t in found] == ["org.acme:s1"]
    assert ok_json(cli(live_server, "things", "count")) == 2
    assert ok_json(cli(live_server, "things", "count", "--filter", 'eq(attributes/zone,"B")')) == 1

    deleted = cli(live_server, "things", "delete", "org.acme:s1")
    assert (deleted.returncode, deleted.stdout, deleted.stderr) == (0, "", "")
    gone = cli(live_server, "things", "get", "org.acme:s1")
    assert gone.returncode == 1
    assert gone.stderr.startswith("things:thing.notfound: ")
    assert ok_json(cli(live_server, "things", "count")) == 1


def test_list_and_search_follow_the_pages_up_to_the_limit(live_server: LiveServer) -> None:
    with live_server.client() as client:
        for n in range(12):
            response = client.put(f"/api/2/things/org.page:t{n:02d}", json={"attributes": {"n": n}})
            assert response.status_code == 201, response.text
        assert client.put("/api/2/things/org.other:x", json={}).status_code == 201

    everything = ok_json(
        cli(live_server, "things", "list", "--namespaces", "org.page", "--size", "5", "--limit", "0")
    )
    assert [t["thingId"] for t in everything] == [f"org.page:t{n:02d}" for n in range(12)]
    limited = ok_json(cli(live_server, "things", "list", "--size", "5", "--limit", "7"))
    assert len(limited) == 7
    assert len({t["thingId"] for t in limited}) == 7

    newest_first = ok_json(
        cli(
            live_server,
            "things",
            "search",
            "--namespaces",
            "org.page",
            "--size",
            "4",
            "--sort=-attributes/n",
            "--fields",
            "thingId,attributes/n",
            "--limit",
            "0",
        )
    )
    assert [t["attributes"]["n"] for t in newest_first] == list(range(11, -1, -1))
    assert newest_first[0] == {"thingId": "org.page:t11", "attributes": {"n": 11}}
    chosen = ok_json(
        cli(live_server, "things", "list", "--ids", "org.page:t03,org.other:x", "--fields", "thingId")
    )
    assert sorted(t["thingId"] for t in chosen) == ["org.other:x", "org.page:t03"]
    # list with a filter is a search
    filtered = ok_json(cli(live_server, "things", "list", "--filter", "ge(attributes/n,10)", "--size", "1"))
    assert [t["thingId"] for t in filtered] == ["org.page:t10", "org.page:t11"]
    assert ok_json(cli(live_server, "things", "count", "--namespaces", "org.page,org.other")) == 13


OWNER_POLICY = {
    "entries": {
        "owner": {
            "subjects": {"nginx:ditto": {"type": "basic"}},
            "resources": {
                "thing:/": {"grant": ["READ", "WRITE"], "revoke": []},
                "policy:/": {"grant": ["READ", "WRITE"], "revoke": []},
            },
        },
        "reader": {
            "subjects": {"nginx:bob": {"type": "basic"}},
            "resources": {"thing:/": {"grant": ["READ"], "revoke": []}},
        },
    }
}


def test_policy_put_get_delete(live_server: LiveServer) -> None:
    created = ok_json(cli(live_server, "policies", "put", "org.acme:shared", json.dumps(OWNER_POLICY)))
    assert created["policyId"] == "org.acme:shared"
    policy = ok_json(cli(live_server, "policies", "get", "org.acme:shared"))
    assert policy["entries"] == OWNER_POLICY["entries"]
    entry = ok_json(cli(live_server, "policies", "get", "org.acme:shared", "--path", "entries/reader"))
    assert entry == OWNER_POLICY["entries"]["reader"]

    table = cli(live_server, "policies", "get", "org.acme:shared", "--output", "table")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "policy org.acme:shared"
    assert lines[1].split() == ["entry", "subjects", "resource", "grant", "revoke"]
    assert lines[2].split() == ["owner", "nginx:ditto", "thing:/", "READ,WRITE"]
    assert lines[4].split() == ["reader", "nginx:bob", "thing:/", "READ"]

    deleted = cli(live_server, "policies", "delete", "org.acme:shared", "-o", "table")
    assert (deleted.returncode, deleted.stdout) == (0, "deleted org.acme:shared\n")
    gone = cli(live_server, "policies", "get", "org.acme:shared")
    assert gone.returncode == 1
    assert gone.stderr.startswith("policies:policy.notfound: ")


def http_push_connection(port: int, name: str) -> dict[str, Any]:
    """An HTTP push connection to a port nobody listens on, closed: it needs no broker and never connects."""
    return {
        "name": name,
        "connectionType": "http-push",
        "connectionStatus": "closed",
        "uri": f"http://127.0.0.1:{port}",
        "sources": [],
        "targets": [
            {
                "address": "POST:/events",
                "topics": ["_/_/things/twin/events"],
                "authorizationContext": ["nginx:ditto"],
            }
        ],
    }


def test_connections_put_list_get_status_delete(live_server: LiveServer) -> None:
    port = free_port()
    created = ok_json(cli(live_server, "connections", "put", json.dumps(http_push_connection(port, "push"))))
    connection_id = created["id"]
    assert created["connectionType"] == "http-push"

    listed = ok_json(cli(live_server, "connections", "list"))
    assert [c["id"] for c in listed] == [connection_id]
    fetched = ok_json(cli(live_server, "connections", "get", connection_id))
    assert (fetched["name"], fetched["uri"]) == ("push", f"http://127.0.0.1:{port}")

    # replace it: by --id, and by the id in the body (a file from `connections get`, edited)
    renamed = cli(
        live_server,
        "connections",
        "put",
        "--id",
        connection_id,
        json.dumps(http_push_connection(port, "renamed")),
    )
    assert (renamed.returncode, renamed.stdout) == (0, "")
    assert ok_json(cli(live_server, "connections", "get", connection_id))["name"] == "renamed"
    edited = {**fetched, "name": "edited"}
    by_body = cli(live_server, "connections", "put", "-f", "-", stdin=json.dumps(edited))
    assert by_body.returncode == 0, by_body.stderr
    assert ok_json(cli(live_server, "connections", "get", connection_id))["name"] == "edited"

    status = ok_json(cli(live_server, "connections", "status", connection_id))
    assert status["connectionId"] == connection_id
    assert (status["connectionStatus"], status["liveStatus"]) == ("closed", "closed")

    table = cli(live_server, "connections", "list", "--output", "table")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["id", "name", "type", "status", "liveStatus"]
    assert row.split() == [connection_id, "edited", "http-push", "closed", "closed"]

    deleted = cli(live_server, "connections", "delete", connection_id)
    assert (deleted.returncode, deleted.stderr) == (0, "")
    assert ok_json(cli(live_server, "connections", "list")) == []
    gone = cli(live_server, "connections", "status", connection_id)
    assert gone.returncode == 1
    assert gone.stderr.startswith("connectivity:connection.notfound: ")


def test_errors_and_exit_codes(live_server: LiveServer) -> None:
    unknown = cli(live_server, "things", "get", "org.acme:nope")
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    # Ditto's error JSON, readable: "code: message (description)"
    assert unknown.stderr.startswith("things:thing.notfound: The Thing with ID 'org.acme:nope'")
    assert unknown.stderr.rstrip().endswith(")")
    assert "\n" not in unknown.stderr.rstrip()

    bad_filter = cli(live_server, "things", "search", "--filter", "eq(attributes/x")
    assert bad_filter.returncode == 1
    assert bad_filter.stderr.startswith("rql.expression.invalid: ")

    wrong_password = cli(live_server, "things", "list", "--password", "wrong")
    assert wrong_password.returncode == 1
    assert wrong_password.stderr.startswith("gateway:authentication.failed: ")
    # connections need the devops user; the ditto user's password does not open them
    not_devops = cli(
        live_server, "connections", "list", "--devops-user", "ditto", "--devops-password", "ditto"
    )
    assert not_devops.returncode == 1
    assert not_devops.stderr.startswith("gateway:authentication.failed: ")

    nobody_listens = f"http://127.0.0.1:{free_port()}"
    unreachable = cli(nobody_listens, "things", "list")
    assert unreachable.returncode == 3
    assert unreachable.stderr.startswith(f"ditto-compat: cannot reach {nobody_listens}: ")

    bad_body = cli(live_server, "things", "put", "org.acme:s1", "{not json")
    assert bad_body.returncode == 2
    assert "not valid JSON" in bad_body.stderr
    no_body = cli(live_server, "things", "patch", "org.acme:s1")
    assert no_body.returncode == 2
    bad_option = cli(live_server, "things", "list", "--size", "0")
    assert bad_option.returncode == 2
    assert "--size" in bad_option.stderr


def test_table_or_json_output(live_server: LiveServer) -> None:
    assert cli(live_server, "things", "put", "org.acme:s1", json.dumps(SENSOR)).returncode == 0

    # not a terminal: JSON unless a table is asked for
    assert ok_json(cli(live_server, "things", "list"))[0]["thingId"] == "org.acme:s1"
    table = cli(live_server, "things", "list", "--output", "table")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["thingId", "policyId", "definition", "attributes"]
    assert row.split() == ["org.acme:s1", "org.acme:s1", "org.acme:sensor:1.0", "location=hall-3,", "floor=2"]

    detail = cli(live_server, "things", "get", "org.acme:s1", "-o", "table").stdout.splitlines()
    assert detail[0].split() == ["field", "value"]
    assert "features/temperature  value=21.5, unit=°C | desired: value=20" in detail

    # a value that is no thing stays JSON, indented
    value = cli(live_server, "things", "get", "org.acme:s1", "--path", "attributes/floor", "-o", "table")
    assert value.stdout == "2\n"
    count = cli(live_server, "things", "count", "-o", "table")
    assert count.stdout == "1\n"
    patched = cli(
        live_server, "things", "patch", "org.acme:s1", '{"attributes": {"floor": 3}}', "-o", "table"
    )
    assert patched.stdout == "patched org.acme:s1\n"


def test_credentials_from_the_environment(server: LiveServer) -> None:
    """``DITTO_USER``/``DITTO_PASSWORD`` pick the user; what one user creates another cannot read."""
    alice = {"DITTO_USER": "alice", "DITTO_PASSWORD": "alice-pw"}
    bob = {"DITTO_USER": "bob", "DITTO_PASSWORD": "bob-pw"}
    created = ok_json(cli(server, "things", "put", "org.acme:private", "{}", env=alice))
    assert created["thingId"] == "org.acme:private"
    assert (
        ok_json(cli(server, "things", "get", "org.acme:private", env=alice))["policyId"] == "org.acme:private"
    )
    hidden = cli(server, "things", "get", "org.acme:private", env=bob)
    assert hidden.returncode == 1
    assert hidden.stderr.startswith("things:thing.notfound: ")
    assert ok_json(cli(server, "things", "count", env=bob)) == 0
    # an option beats the environment
    as_alice = cli(server, "things", "count", "--user", "alice", "--password", "alice-pw", env=bob)
    assert ok_json(as_alice) == 1
