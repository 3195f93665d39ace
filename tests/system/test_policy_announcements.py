"""Subject deletion announcements over ``/ws/2`` against a real server process (``basic-policy`` "Subject deletion
announcements", ``protocol-specification-policies`` "Announcements", the protocol example
``policies/generated/announcements/subjectDeletion``).

The server rounds expiries up to whole seconds (``--policy-subject-expiry-granularity 1s``; Ditto's default is
an hour), so that subjects can expire a few seconds after they were written.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.live_server import LiveServer
from tests.system.conftest import ServerFactory
from tests.system.realtime import ALICE, BOB, nothing_arrives, receive, socket

START = "START-SEND-POLICY-ANNOUNCEMENTS"
GRANULARITY = ["--policy-subject-expiry-granularity", "1s"]
# the timer of the server and the clock of the test may disagree by this much
TOLERANCE = timedelta(milliseconds=300)


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users.htpasswd"
    path.write_text("alice:{PLAIN}alice-pw\nbob:{PLAIN}bob-pw\n")
    return path


@pytest.fixture
def server(server_factory: ServerFactory, users: Path) -> LiveServer:
    return server_factory(args=["--htpasswd", str(users), *GRANULARITY])


def new_policy_id(namespace: str = "org.announce") -> str:
    return f"{namespace}:policy-{uuid.uuid4().hex[:10]}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def policy(bob: dict[str, Any]) -> dict[str, Any]:
    """Alice owns it; Bob is a guest whose subject is ``bob``."""
    return {
        "entries": {
            "owner": {
                "subjects": {"nginx:alice": {"type": "basic"}},
                "resources": {"policy:/": {"grant": ["READ", "WRITE"], "revoke": []}},
            },
            "guest": {
                "subjects": {"nginx:bob": bob},
                "resources": {"thing:/": {"grant": ["READ"], "revoke": []}},
            },
        }
    }


async def call(server: LiveServer, method: str, path: str, body: Any = None) -> httpx.Response:
    """Alice's request to ``/api/2/policies/<path>``."""
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        return await client.request(method, f"/api/2/policies/{path}", json=body)


async def create_policy(server: LiveServer, policy_id: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await call(server, "PUT", policy_id, body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def subscribe(ws: ClientConnection, params: str = "") -> None:
    await ws.send(START + (f"?{params}" if params else ""))
    assert await receive(ws) == f"{START}:ACK"


async def receive_until(ws: ClientConnection, deadline: datetime) -> Any:
    """The next frame, which must arrive before ``deadline`` (wall clock)."""
    seconds = max(0.0, (deadline - datetime.now(UTC)).total_seconds())
    text = await asyncio.wait_for(ws.recv(), seconds)
    assert isinstance(text, str)
    return json.loads(text)


async def nothing_until(ws: ClientConnection, moment: datetime) -> None:
    seconds = max(0.0, (moment - datetime.now(UTC)).total_seconds())
    with pytest.raises(TimeoutError):
        frame = await asyncio.wait_for(ws.recv(), seconds)
        pytest.fail(f"unexpected frame {frame!r}")


def assert_announcement(frame: dict[str, Any], policy_id: str, subject_id: str) -> datetime:
    """The frame is a subject deletion announcement of the subject (the shape of Ditto's protocol example);
    returns its ``deleteAt``."""
    namespace, name = policy_id.split(":")
    assert frame["topic"] == f"{namespace}/{name}/policies/announcements/subjectDeletion"
    assert frame["path"] == "/"
    assert frame["headers"]["correlation-id"]
    assert set(frame["value"]) == {"deleteAt", "subjectIds"}
    assert frame["value"]["subjectIds"] == [subject_id]
    return parse(frame["value"]["deleteAt"])


async def test_before_expiry_is_announced_once_to_the_subject_only(server: LiveServer) -> None:
    policy_id = new_policy_id()
    async with socket(server, BOB) as bob, socket(server, ALICE) as alice:
        await subscribe(bob)
        await subscribe(alice)
        requested = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=300_000)
        announcement = {"beforeExpiry": "2s", "whenDeleted": True}
        created = await create_policy(
            server, policy_id, policy({"type": "t", "expiry": iso(requested), "announcement": announcement})
        )
        stored = created["entries"]["guest"]["subjects"]["nginx:bob"]
        assert stored["announcement"] == announcement
        expiry = parse(stored["expiry"])
        assert expiry == requested.replace(microsecond=0) + timedelta(seconds=1)  # rounded up to the second

        frame = await receive_until(bob, expiry)
        received = datetime.now(UTC)
        assert assert_announcement(frame, policy_id, "nginx:bob") == expiry
        assert received >= expiry - timedelta(seconds=2) - TOLERANCE
        # announced once: not again when the subject expires (although whenDeleted is set)
        await nothing_until(bob, expiry + timedelta(seconds=1))
        await nothing_arrives(alice)  # not Alice's subject


async def test_when_deleted_by_a_policy_modification(server: LiveServer) -> None:
    policy_id = new_policy_id()
    expiry = iso(datetime.now(UTC) + timedelta(hours=2))
    bob_subject = {"type": "t", "expiry": expiry, "announcement": {"whenDeleted": True}}
    await create_policy(server, policy_id, policy(bob_subject))
    subject_path = f"{policy_id}/entries/guest/subjects/nginx:bob"
    async with (
        socket(server, BOB) as bob,
        socket(server, BOB) as unsubscribed,
        socket(server, ALICE) as alice,
    ):
        await subscribe(bob)
        await subscribe(alice)
        # a changed subject is not a deleted one: nothing is announced, the new one is announced later
        later = iso(datetime.now(UTC) + timedelta(hours=3))
        changed = {**bob_subject, "expiry": later}
        assert (await call(server, "PUT", subject_path, changed)).status_code == 204
        await nothing_arrives(bob)

        before = datetime.now(UTC)
        assert (await call(server, "DELETE", subject_path)).status_code == 204
        frame = await receive(bob)
        delete_at = assert_announcement(frame, policy_id, "nginx:bob")
        assert before - TOLERANCE <= delete_at <= datetime.now(UTC)
        await nothing_arrives(bob)  # once
        await nothing_arrives(unsubscribed)
        await nothing_arrives(alice)

        # deleted again after it came back: a new subject, announced again; without whenDeleted: nothing
        assert (await call(server, "PUT", subject_path, bob_subject)).status_code == 201
        assert (await call(server, "DELETE", subject_path)).status_code == 204
        assert_announcement(await receive(bob), policy_id, "nginx:bob")
        quiet = {**bob_subject, "announcement": {"whenDeleted": False}}
        assert (await call(server, "PUT", subject_path, quiet)).status_code == 201
        assert (await call(server, "DELETE", subject_path)).status_code == 204
        await nothing_arrives(bob)

        # deleting the whole policy deletes its subjects
        assert (await call(server, "PUT", subject_path, bob_subject)).status_code == 201
        assert (await call(server, "DELETE", policy_id)).status_code == 204
        assert_announcement(await receive(bob), policy_id, "nginx:bob")


async def test_when_deleted_at_expiry(server: LiveServer) -> None:
    policy_id = new_policy_id()
    async with socket(server, BOB) as bob:
        await subscribe(bob)
        requested = datetime.now(UTC) + timedelta(seconds=2)
        bob_subject = {"type": "t", "expiry": iso(requested), "announcement": {"whenDeleted": True}}
        created = await create_policy(server, policy_id, policy(bob_subject))
        expiry = parse(created["entries"]["guest"]["subjects"]["nginx:bob"]["expiry"])
        await nothing_until(bob, expiry - TOLERANCE)
        frame = await receive_until(bob, expiry + timedelta(seconds=2))
        assert assert_announcement(frame, policy_id, "nginx:bob") == expiry
        # the expired subject is gone: deleting it now announces nothing more
        assert (await call(server, "DELETE", f"{policy_id}/entries/guest")).status_code == 204
        await nothing_arrives(bob)


async def test_namespaces_and_stop(server: LiveServer) -> None:
    policy_id = new_policy_id("org.announce.one")
    other_id = new_policy_id("org.announce.two")
    bob_subject = {
        "type": "t",
        "expiry": iso(datetime.now(UTC) + timedelta(hours=2)),
        "announcement": {"whenDeleted": True},
    }
    await create_policy(server, policy_id, policy(bob_subject))
    await create_policy(server, other_id, policy(bob_subject))
    async with socket(server, BOB) as one, socket(server, BOB) as both, socket(server, BOB) as stopped:
        await subscribe(one, "namespaces=org.announce.one")
        await subscribe(both, "namespaces=org.announce.one,org.announce.two")
        await subscribe(stopped)
        await stopped.send("STOP-SEND-POLICY-ANNOUNCEMENTS")
        assert await receive(stopped) == "STOP-SEND-POLICY-ANNOUNCEMENTS:ACK"
        for pid in (other_id, policy_id):
            path = f"{pid}/entries/guest/subjects/nginx:bob"
            assert (await call(server, "DELETE", path)).status_code == 204
        assert_announcement(await receive(both), other_id, "nginx:bob")
        assert_announcement(await receive(both), policy_id, "nginx:bob")
        assert_announcement(await receive(one), policy_id, "nginx:bob")
        await nothing_arrives(one)
        await nothing_arrives(stopped)


async def test_a_restart_plans_the_pending_announcements(server_factory: ServerFactory, users: Path) -> None:
    server = server_factory(args=["--htpasswd", str(users), *GRANULARITY])
    policy_id = new_policy_id()
    requested = datetime.now(UTC) + timedelta(seconds=6)
    bob_subject = {"type": "t", "expiry": iso(requested), "announcement": {"beforeExpiry": "3s"}}
    created = await create_policy(server, policy_id, policy(bob_subject))
    expiry = parse(created["entries"]["guest"]["subjects"]["nginx:bob"]["expiry"])
    server.restart()
    async with socket(server, BOB) as bob:
        await subscribe(bob)
        frame = await receive_until(bob, expiry)
        assert assert_announcement(frame, policy_id, "nginx:bob") == expiry
        assert datetime.now(UTC) >= expiry - timedelta(seconds=3) - TOLERANCE


async def test_a_policy_created_with_its_thing_is_planned_too(server: LiveServer) -> None:
    """An inline ``_policy`` is written by the Things path, not the Policies API: it is planned all the same."""
    thing_id = f"org.announce:thing-{uuid.uuid4().hex[:10]}"
    async with socket(server, BOB) as bob:
        await subscribe(bob)
        requested = datetime.now(UTC) + timedelta(seconds=2)
        inline = policy({"type": "t", "expiry": iso(requested), "announcement": {"whenDeleted": True}})
        inline["entries"]["owner"]["resources"]["thing:/"] = {"grant": ["READ", "WRITE"], "revoke": []}
        async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
            r = await client.put(f"/api/2/things/{thing_id}", json={"_policy": inline})
            assert r.status_code == 201, r.text
        frame = await receive_until(bob, requested + timedelta(seconds=3))
        assert_announcement(frame, thing_id, "nginx:bob")
