"""``/api/2/connections`` in-process on both backends (``connectivity-manage-connections``, OpenAPI
"Connections"): CRUD, commands, status, metrics, logs, dry runs, history, and reopening on restart.

Open connections run on :class:`tests.api.tcp_runtime.TcpRuntime`, a real TCP client of a real local server;
the broker clients are tested against real brokers elsewhere.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ditto_compat.api.app import create_app
from ditto_compat.connectivity.manager import RuntimeFactory
from ditto_compat.settings import Settings
from tests.api.conftest import DITTO, basic
from tests.api.tcp_runtime import LineServer, TcpRuntimes
from tests.services import free_port

DEVOPS = basic("devops", "foobar")
BASE = "/api/2/connections"
CMD = {"Content-Type": "text/plain"}
DEADLINE_S = 10.0


@asynccontextmanager
async def running(settings: Settings, factory: RuntimeFactory | None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, runtime_factory=factory)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=DEVOPS) as c:
            yield c


@pytest.fixture
def runtimes() -> TcpRuntimes:
    return TcpRuntimes()


@pytest.fixture
async def devops(settings: Settings, runtimes: TcpRuntimes) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings, runtimes) as client:
        yield client


@pytest.fixture
async def server() -> AsyncIterator[LineServer]:
    line_server = await LineServer().start()
    try:
        yield line_server
    finally:
        await line_server.stop()


def definition(port: int, status: str = "open", **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "tcp-test",
        "connectionType": "mqtt",
        "connectionStatus": status,
        "uri": f"tcp://user:pw@127.0.0.1:{port}",
        "sources": [{"addresses": ["telemetry/#"], "qos": 1, "authorizationContext": ["nginx:ditto"]}],
        "targets": [
            {
                "address": "events/{{ thing:id }}",
                "topics": ["_/_/things/twin/events?namespaces=org.test&filter=exists(attributes/a)"],
                "authorizationContext": ["nginx:ditto"],
            }
        ],
        "sshTunnel": {"enabled": False, "uri": "ssh://localhost:22"},
    }
    doc.update(changes)
    return doc


async def eventually(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_S}s: {what}")
        await asyncio.sleep(0.02)


async def live_status(client: httpx.AsyncClient, connection_id: str) -> str:
    response = await client.get(f"{BASE}/{connection_id}/status")
    assert response.status_code == 200, response.text
    status: str = response.json()["liveStatus"]
    return status


async def test_only_the_devops_user_may_use_the_connections_api(devops: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, DITTO, basic("devops", "wrong")):
        response = await devops.get(BASE, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "gateway:authentication.failed"
        assert response.headers["www-authenticate"] == 'Basic realm="DITTO"'
    assert (await devops.get(BASE)).json() == []


async def test_create_retrieve_list_modify_delete(devops: httpx.AsyncClient, server: LineServer) -> None:
    created = await devops.post(BASE, json=definition(server.port, "closed"))
    assert created.status_code == 201, created.text
    body = created.json()
    connection_id = body["id"]
    assert created.headers["location"] == f"http://testserver{BASE}/{connection_id}"
    assert body["uri"] == f"tcp://user:pw@127.0.0.1:{server.port}"  # returned as sent, as Ditto does
    assert body["sshTunnel"] == {"enabled": False, "uri": "ssh://localhost:22"}
    assert body["clientCount"] == 1

    fetched = await devops.get(f"{BASE}/{connection_id}")
    assert fetched.status_code == 200 and fetched.json() == body
    assert (await devops.get(BASE)).json() == [body]
    assert (await devops.get(BASE, params={"ids-only": "true"})).json() == [connection_id]
    selected = (await devops.get(BASE, params={"fields": "id,name,_revision"})).json()
    assert selected == [{"id": connection_id, "name": "tcp-test", "_revision": 1}]
    one = await devops.get(f"{BASE}/{connection_id}", params={"fields": "connectionStatus,_created"})
    assert set(one.json()) == {"connectionStatus", "_created"}

    modified = await devops.put(f"{BASE}/{connection_id}", json={**body, "name": "renamed"})
    assert modified.status_code == 204, modified.text
    assert (await devops.get(f"{BASE}/{connection_id}")).json()["name"] == "renamed"
    # the definition of revision 1 is still in the history
    old = await devops.get(f"{BASE}/{connection_id}", headers={"at-historical-revision": "1"})
    assert old.status_code == 200 and old.json()["name"] == "tcp-test"
    missing = await devops.get(f"{BASE}/{connection_id}", headers={"at-historical-revision": "9"})
    assert missing.status_code == 404
    assert missing.json()["error"] == "connectivity:connection.history.notfound"

    assert (await devops.delete(f"{BASE}/{connection_id}")).status_code == 204
    for path in ("", "/status", "/metrics", "/logs"):
        gone = await devops.get(f"{BASE}/{connection_id}{path}")
        assert gone.status_code == 404, path
        assert gone.json()["error"] == "connectivity:connection.notfound"
    assert (await devops.get(BASE)).json() == []
    assert (await devops.delete(f"{BASE}/{connection_id}")).status_code == 404


async def test_errors_are_dittos(devops: httpx.AsyncClient, server: LineServer) -> None:
    with_id = await devops.post(BASE, json={**definition(server.port), "id": "chosen"})
    assert with_id.status_code == 400 and with_id.json()["error"] == "connectivity:connection.id.notsettable"
    no_uri = definition(server.port)
    del no_uri["uri"]
    invalid = await devops.post(BASE, json=no_uri)
    assert invalid.status_code == 400
    assert invalid.json()["error"] == "connectivity:connection.configuration.invalid"
    assert "'uri' is missing" in invalid.json()["message"]
    bad_filter = definition(server.port)
    bad_filter["targets"][0]["topics"] = ["_/_/things/twin/events?filter=like(a"]
    assert (await devops.post(BASE, json=bad_filter)).status_code == 400
    not_json = await devops.post(BASE, content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"] == "json.invalid"
    # PUT under a new id creates the connection there (Ditto's "create or update")
    chosen = await devops.put(f"{BASE}/chosen-id", json=definition(server.port, "closed"))
    assert chosen.status_code == 201 and chosen.json()["id"] == "chosen-id"
    assert chosen.headers["location"].endswith("/api/2/connections/chosen-id")
    assert (await devops.put(f"{BASE}/chosen-id", json=definition(server.port, "closed"))).status_code == 204
    invalid_id = await devops.put(f"{BASE}/has%20space", json=definition(server.port, "closed"))
    assert invalid_id.status_code == 400
    bad_id = await devops.get(f"{BASE}/has%20space")
    assert bad_id.status_code == 400 and bad_id.json()["error"] == "connectivity:connection.id.invalid"
    created = (await devops.post(BASE, json=definition(server.port, "closed"))).json()
    other_id = await devops.put(f"{BASE}/{created['id']}", json={**created, "id": "other"})
    assert (
        other_id.status_code == 400 and other_id.json()["error"] == "connectivity:connection.id.notsettable"
    )
    unknown = await devops.post(
        f"{BASE}/{created['id']}/command", content="connectivity.commands:explode", headers=CMD
    )
    assert unknown.status_code == 400 and unknown.json()["error"] == "connectivity:command.invalid"
    assert (await devops.patch(f"{BASE}/{created['id']}", json={})).status_code == 405


async def test_an_open_connection_runs_and_answers_status_metrics_and_logs(
    devops: httpx.AsyncClient, server: LineServer, runtimes: TcpRuntimes
) -> None:
    server.lines = [b"hello", b"world"]
    connection_id = (await devops.post(BASE, json=definition(server.port))).json()["id"]
    status = (await devops.get(f"{BASE}/{connection_id}/status")).json()
    assert status["connectionId"] == connection_id
    assert status["connectionStatus"] == "open" and status["liveStatus"] == "open"
    assert status["clientStatus"][0]["status"] == "open"
    assert runtimes.calls == [("open", connection_id)]

    async def consumed_two() -> bool:
        metrics = (await devops.get(f"{BASE}/{connection_id}/metrics")).json()
        return bool(metrics["connectionMetrics"]["inbound"]["consumed"]["success"]["PT1M"] == 2)

    await eventually(consumed_two, "the two lines are counted")
    metrics = (await devops.get(f"{BASE}/{connection_id}/metrics")).json()
    address = f"127.0.0.1:{server.port}"
    assert metrics["sourceMetrics"]["addressMetrics"][address]["consumed"]["success"]["PT24H"] == 2
    assert metrics["containsFailures"] is False
    logs = (await devops.get(f"{BASE}/{connection_id}/logs")).json()
    assert [e["message"] for e in logs["connectionLogs"] if e["category"] == "source"] == [
        "received hello",
        "received world",
    ]
    assert logs["enabledSince"] < logs["enabledUntil"]

    for command in ("resetConnectionMetrics", "resetConnectionLogs"):
        answer = await devops.post(
            f"{BASE}/{connection_id}/command", content=f"connectivity.commands:{command}", headers=CMD
        )
        assert answer.status_code == 200 and answer.content == b""
    metrics = (await devops.get(f"{BASE}/{connection_id}/metrics")).json()
    assert metrics["connectionMetrics"]["inbound"]["consumed"]["success"]["PT24H"] == 0
    assert (await devops.get(f"{BASE}/{connection_id}/logs")).json()["connectionLogs"] == []

    closed = await devops.post(
        f"{BASE}/{connection_id}/command", content="connectivity.commands:closeConnection", headers=CMD
    )
    assert closed.status_code == 200
    status = (await devops.get(f"{BASE}/{connection_id}/status")).json()
    assert status == {
        "connectionId": connection_id,
        "connectionStatus": "closed",
        "liveStatus": "closed",
        "clientStatus": [],
        "sourceStatus": [],
        "targetStatus": [],
        "sshTunnelStatus": [],
    }
    # the status a command sets is part of the persisted definition
    stored = (
        await devops.get(f"{BASE}/{connection_id}", params={"fields": "connectionStatus,_revision"})
    ).json()
    assert stored == {"connectionStatus": "closed", "_revision": 2}
    opened = await devops.post(
        f"{BASE}/{connection_id}/command", content="connectivity.commands:openConnection", headers=CMD
    )
    assert opened.status_code == 200
    assert await live_status(devops, connection_id) == "open"

    # modify: the old runtime is closed and a new one opened on the new definition
    body = (await devops.get(f"{BASE}/{connection_id}")).json()
    assert (await devops.put(f"{BASE}/{connection_id}", json={**body, "name": "v2"})).status_code == 204
    assert await live_status(devops, connection_id) == "open"
    assert (await devops.delete(f"{BASE}/{connection_id}")).status_code == 204
    assert runtimes.calls == [("open", connection_id), ("close", connection_id)] * 3


async def test_a_connection_that_cannot_connect_is_failed_and_retried_until_it_opens(
    devops: httpx.AsyncClient, runtimes: TcpRuntimes
) -> None:
    port = free_port()
    created = await devops.post(BASE, json=definition(port))
    assert created.status_code == 201  # persisted even though the broker is down
    connection_id = created.json()["id"]
    status = (await devops.get(f"{BASE}/{connection_id}/status")).json()
    assert status["connectionStatus"] == "open" and status["liveStatus"] == "failed"
    assert status["recoveryStatus"] == "ongoing"
    assert "ConnectionRefusedError" in status["clientStatus"][0]["statusDetails"]
    logs = (await devops.get(f"{BASE}/{connection_id}/logs")).json()["connectionLogs"]
    assert logs[0]["category"] == "connection" and logs[0]["level"] == "failure"
    refused = await devops.post(
        f"{BASE}/{connection_id}/command", content="connectivity.commands:openConnection", headers=CMD
    )
    assert refused.status_code == 504
    assert refused.json()["error"] == "connectivity:connection.failed"

    line_server = await LineServer(port).start()
    try:

        async def opened() -> bool:
            return await live_status(devops, connection_id) == "open"

        await eventually(opened, "the retry connects once the server listens")
    finally:
        await line_server.stop()
    assert sum(1 for call in runtimes.calls if call[0] == "open") >= 3


async def test_dry_run_connects_once_and_persists_nothing(
    devops: httpx.AsyncClient, server: LineServer, runtimes: TcpRuntimes
) -> None:
    tested = await devops.post(
        BASE, params={"dry-run": "true"}, json={**definition(server.port), "id": "ignored"}
    )
    assert tested.status_code == 200, tested.text
    assert isinstance(tested.json(), str)
    assert [call[0] for call in runtimes.calls] == ["test"]
    assert runtimes.calls[0][1].endswith("-dry-run")
    assert (await devops.get(BASE)).json() == []
    unreachable = await devops.post(BASE, params={"dry-run": "true"}, json=definition(free_port()))
    assert unreachable.status_code == 504 and unreachable.json()["error"] == "connectivity:connection.failed"
    invalid = await devops.post(BASE, params={"dry-run": "true"}, json=definition(server.port, uri="nope"))
    assert invalid.status_code == 400


async def test_connections_are_reopened_after_a_restart(settings: Settings, server: LineServer) -> None:
    first = TcpRuntimes()
    async with running(settings, first) as client:
        open_id = (await client.post(BASE, json=definition(server.port))).json()["id"]
        closed_id = (await client.post(BASE, json=definition(server.port, "closed"))).json()["id"]
    assert first.calls == [("open", open_id), ("close", open_id)]  # shutdown closes the runtimes
    second = TcpRuntimes()
    async with running(settings, second) as client:

        async def reopened() -> bool:
            return await live_status(client, open_id) == "open"

        await eventually(reopened, "the open connection is reopened at start-up")
        assert await live_status(client, closed_id) == "closed"
        assert second.calls == [("open", open_id)]
        assert sorted((await client.get(BASE, params={"ids-only": "true"})).json()) == sorted(
            [open_id, closed_id]
        )


async def test_without_a_runtime_for_its_type_a_connection_is_failed_but_kept(settings: Settings) -> None:
    async with running(settings, None) as client:
        # AMQP 1.0 is a valid definition that this server cannot open (no port is ever contacted)
        doc = definition(free_port(), connectionType="amqp-10")
        doc["uri"] = doc["uri"].replace("tcp://", "amqp://")
        created = await client.post(BASE, json=doc)
        assert created.status_code == 201
        connection_id = created.json()["id"]
        status = (await client.get(f"{BASE}/{connection_id}/status")).json()
        assert status["liveStatus"] == "failed"
        assert "cannot be opened by this server" in status["clientStatus"][0]["statusDetails"]
        assert "recoveryStatus" not in status  # nothing to retry
        tested = await client.post(BASE, params={"dry-run": "true"}, json=doc)
        assert tested.status_code == 400
        assert tested.json()["error"] == "connectivity:connection.type.unsupported"


@pytest.mark.mongo
async def test_of_two_processes_on_one_database_one_runs_a_connection(
    mongo_uri: str, tmp_path: Path, server: LineServer
) -> None:
    """Two servers on one MongoDB: the connection runs in the one that holds its lease, the other says so and
    takes over when the first goes (connectivity/manager.py)."""
    database = f"t{uuid.uuid4().hex[:12]}"

    def settings_of(name: str) -> Settings:
        return Settings(
            data_dir=str(tmp_path / name),
            mongo_uri=mongo_uri,
            mongo_database=database,
            connection_lease_s=1.0,
        )

    first_runtimes, second_runtimes = TcpRuntimes(), TcpRuntimes()
    first_process, second_process = AsyncExitStack(), AsyncExitStack()
    try:
        first = await first_process.enter_async_context(running(settings_of("first"), first_runtimes))
        connection_id = (await first.post(BASE, json=definition(server.port))).json()["id"]
        assert await live_status(first, connection_id) == "open"
        deleted_id = (await first.post(BASE, json=definition(server.port))).json()["id"]
        second = await second_process.enter_async_context(running(settings_of("second"), second_runtimes))
        await asyncio.sleep(2.5)  # longer than the lease: the first renews it, the second keeps asking
        assert ("open", connection_id) not in second_runtimes.calls
        status = (await second.get(f"{BASE}/{connection_id}/status")).json()
        assert status["liveStatus"] == "closed"
        assert "another ditto-compat process" in status["clientStatus"][0]["statusDetails"]
        assert first_runtimes.calls.count(("open", connection_id)) == 1
        # created in the first process after the second started: the second learns of it, and leaves it there
        later_id = (await first.post(BASE, json=definition(server.port))).json()["id"]

        async def known_in_second() -> bool:
            r = await second.get(f"{BASE}/{later_id}/status")
            return r.status_code == 200 and r.json()["liveStatus"] == "closed"

        await eventually(known_in_second, "the second process to learn of the new connection")
        # deleted in the first process: the second, which holds it as it was when it started, does not open it
        assert (await first.delete(f"{BASE}/{deleted_id}")).status_code == 204
        await asyncio.sleep(1.5)
        assert ("open", deleted_id) not in second_runtimes.calls
        assert (await second.get(f"{BASE}/{deleted_id}/status")).status_code == 404

        await first_process.aclose()  # the first process stops (and gives the lease up)

        async def taken_over() -> bool:
            return await live_status(second, connection_id) == "open"

        await eventually(taken_over, "the second process to take the connection over")
        assert second_runtimes.calls.count(("open", connection_id)) == 1

        async def later_taken_over() -> bool:  # the one it learned of, too
            return await live_status(second, later_id) == "open"

        await eventually(later_taken_over, "the second process to take the later connection over")
    finally:
        await first_process.aclose()
        await second_process.aclose()
