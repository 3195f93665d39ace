"""``POST /devops/piggyback/connectivity`` (``connectivity-manage-connections-piggyback``): the connection
commands of Ditto's DevOps piggybacks, in-process on both backends, answering with the commands' responses."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import DITTO
from tests.api.tcp_runtime import LineServer, TcpRuntimes
from tests.api.test_connections import definition, devops, eventually, runtimes, server  # noqa: F401

PIGGYBACK = "/devops/piggyback/connectivity"


async def piggyback(client: httpx.AsyncClient, command_type: str, **fields: Any) -> httpx.Response:
    body = {
        "targetActorSelection": "/system/sharding/connection",
        "headers": {"aggregate": False, "is-group-topic": False, "ditto-sudo": True},
        "piggybackCommand": {"type": f"connectivity.commands:{command_type}", **fields},
    }
    return await client.post(PIGGYBACK, json=body)


async def test_the_connection_commands_as_piggybacks(
    devops: httpx.AsyncClient,  # noqa: F811
    server: LineServer,  # noqa: F811
    runtimes: TcpRuntimes,  # noqa: F811
) -> None:
    connection = {**definition(server.port, "closed"), "id": "piggybacked", "tags": ["sandbox"]}
    created = await piggyback(devops, "createConnection", connection=connection)
    assert created.status_code == 201, created.text
    assert created.json()["type"] == "connectivity.responses:createConnection"
    assert created.json()["status"] == 201
    assert created.json()["connection"]["id"] == "piggybacked"
    # the same connection as the HTTP API sees it
    assert (await devops.get("/api/2/connections/piggybacked")).json() == created.json()["connection"]

    retrieved = await piggyback(devops, "retrieveConnection", connectionId="piggybacked")
    assert retrieved.status_code == 200
    assert retrieved.json()["connection"] == created.json()["connection"]
    ids = (await piggyback(devops, "retrieveAllConnectionIds")).json()
    assert ids == {
        "type": "connectivity.responses:retrieveAllConnectionIds",
        "status": 200,
        "allConnectionIds": ["piggybacked"],
    }

    sudo = {"targetActorSelection": "/system/sharding/connection", "headers": {"aggregate": False}}
    tags = await devops.post(
        PIGGYBACK,
        json={
            **sudo,
            "piggybackCommand": {
                "type": "connectivity.sudo.commands:sudoRetrieveConnectionTags",
                "connectionId": "piggybacked",
            },
        },
    )
    assert tags.json() == {
        "type": "connectivity.sudo.responses:sudoRetrieveConnectionTags",
        "status": 200,
        "tags": ["sandbox"],
    }
    for tag, expected in (("sandbox", ["piggybacked"]), ("other", [])):
        by_tag = await devops.post(
            PIGGYBACK,
            json={
                **sudo,
                "piggybackCommand": {
                    "type": "connectivity.sudo.commands:sudoRetrieveConnectionIdsByTag",
                    "tag": tag,
                },
            },
        )
        assert by_tag.json()["connectionIds"] == expected

    modified = await piggyback(devops, "modifyConnection", connection={**connection, "name": "renamed"})
    assert modified.status_code == 204 and modified.content == b""
    assert (await devops.get("/api/2/connections/piggybacked")).json()["name"] == "renamed"

    opened = await piggyback(devops, "openConnection", connectionId="piggybacked")
    assert opened.json() == {
        "type": "connectivity.responses:openConnection",
        "status": 200,
        "connectionId": "piggybacked",
    }

    async def is_open() -> bool:
        status = (await piggyback(devops, "retrieveConnectionStatus", connectionId="piggybacked")).json()
        return bool(status["liveStatus"] == "open")

    await eventually(is_open, "the connection to open")
    status = (await piggyback(devops, "retrieveConnectionStatus", connectionId="piggybacked")).json()
    assert status["type"] == "connectivity.responses:retrieveConnectionStatus"
    assert status["connectionId"] == "piggybacked" and status["connectionStatus"] == "open"
    metrics = (await piggyback(devops, "retrieveConnectionMetrics", connectionId="piggybacked")).json()
    assert metrics["type"] == "connectivity.responses:retrieveConnectionMetrics"
    assert "connectionMetrics" in metrics and "sourceMetrics" in metrics
    logs = (await piggyback(devops, "retrieveConnectionLogs", connectionId="piggybacked")).json()
    assert logs["type"] == "connectivity.responses:retrieveConnectionLogs"
    assert isinstance(logs["connectionLogs"], list) and logs["enabledSince"] < logs["enabledUntil"]
    for command_type in ("resetConnectionMetrics", "enableConnectionLogs", "resetConnectionLogs"):
        answer = await piggyback(devops, command_type, connectionId="piggybacked")
        assert answer.status_code == 200 and answer.json()["type"] == f"connectivity.responses:{command_type}"
    closed = await piggyback(devops, "closeConnection", connectionId="piggybacked")
    assert closed.status_code == 200
    assert (await devops.get("/api/2/connections/piggybacked/status")).json()["liveStatus"] == "closed"

    tested = await piggyback(devops, "testConnection", connection={**connection, "id": "probe"})
    assert tested.status_code == 200, tested.text
    assert tested.json()["testResult"] == "successfully connected + initialized mapper"

    deleted = await piggyback(devops, "deleteConnection", connectionId="piggybacked")
    assert deleted.status_code == 204
    gone = await piggyback(devops, "retrieveConnection", connectionId="piggybacked")
    assert gone.status_code == 404 and gone.json()["error"] == "connectivity:connection.notfound"


async def test_bad_piggybacks_get_ditto_errors(devops: httpx.AsyncClient) -> None:  # noqa: F811
    unknown = await piggyback(devops, "explodeConnection", connectionId="x")
    assert unknown.status_code == 400 and unknown.json()["error"] == "connectivity:command.invalid"
    missing = await piggyback(devops, "retrieveConnection")
    assert missing.status_code == 400 and missing.json()["error"] == "json.invalid"
    not_json = await devops.post(PIGGYBACK, content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"] == "json.invalid"
    invalid = await piggyback(devops, "createConnection", connection={"connectionType": "mqtt"})
    assert invalid.status_code == 400
    assert invalid.json()["error"] == "connectivity:connection.configuration.invalid"
    assert (await devops.get(PIGGYBACK)).status_code == 405
    as_user = await devops.post(PIGGYBACK, json={}, headers=DITTO)
    assert as_user.status_code == 401 and as_user.json()["error"] == "gateway:authentication.failed"
