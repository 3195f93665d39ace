"""A connection's inbound and outbound pipelines against the real app (store, dispatcher, policies, hub), fed
with broker messages the way a client adapter hands them over; the brokers themselves are exercised in
tests/contract/brokers and end to end in tests/system."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ditto_compat.api.app import create_app
from ditto_compat.api.context import AppContext
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.inbound import InboundPipeline, compile_source
from ditto_compat.connectivity.model import Connection, Enforcement, ReplyTarget, Source, Target, TargetTopic
from ditto_compat.connectivity.monitor import ConnectionMonitor
from ditto_compat.connectivity.outbound import OutboundPipeline, compile_target
from ditto_compat.connectivity.running import mappers_of
from ditto_compat.persistence.ports import StoreUnavailable
from ditto_compat.service.dispatcher import utc_now
from ditto_compat.service.signals import SignalHandler
from ditto_compat.settings import Settings
from tests.api.conftest import DITTO

DEVICE = "integration:device-connection"  # the connection's subject


@dataclass
class Published:
    """What the pipelines hand to the adapter's ``publish``: recorded, as a broker would receive it."""

    messages: list[tuple[ExternalMessage, Target]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, message: ExternalMessage, target: Target) -> None:
        self.messages.append((message, target))
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[AppContext, httpx.AsyncClient]]:
    application = create_app(Settings(data_dir=str(tmp_path)))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=DITTO) as client:
            yield application.state.ctx, client


def policy(thing_reader: str = "nginx:ditto") -> dict[str, Any]:
    everything = {"thing:/": {"grant": ["READ", "WRITE"], "revoke": []}}
    return {
        "entries": {
            "owner": {
                "subjects": {"nginx:ditto": {"type": "basic"}},
                "resources": {**everything, "policy:/": {"grant": ["READ", "WRITE"], "revoke": []}},
            },
            "device": {"subjects": {DEVICE: {"type": "connection"}}, "resources": everything},
            "reader": {"subjects": {thing_reader: {"type": "t"}}, "resources": everything},
        }
    }


async def new_thing(client: httpx.AsyncClient, **body: Any) -> str:
    thing_id = f"org.conn:{uuid.uuid4().hex[:8]}"
    r = await client.put(f"/api/2/things/{thing_id}", json={"_policy": policy(), **body})
    assert r.status_code == 201, r.text
    return thing_id


def ditto_message(thing_id: str, path: str, value: Any, **headers: str) -> ExternalMessage:
    namespace, name = thing_id.split(":")
    envelope = {
        "topic": f"{namespace}/{name}/things/twin/commands/modify",
        "headers": {"correlation-id": f"c-{uuid.uuid4().hex[:6]}", **headers},
        "path": path,
        "value": value,
    }
    return ExternalMessage(
        headers={"content-type": "application/vnd.eclipse.ditto+json"},
        text=json.dumps(envelope),
        address="telemetry",
    )


def inbound(
    ctx: AppContext, source: Source, published: Published
) -> tuple[InboundPipeline, ConnectionMonitor]:
    connection = Connection("conn-1", "mqtt", "open", "tcp://127.0.0.1:1", sources=(source,))
    monitor = ConnectionMonitor(connection.id)
    signals = SignalHandler(ctx.dispatcher, ctx.policies, ctx.acks, ctx.messages)
    route = compile_source(source, mappers_of(connection, source.payload_mapping))
    return InboundPipeline(connection, [route], signals, monitor, published, utc_now), monitor


def counted(monitor: ConnectionMonitor, kind: str, success: bool) -> int:
    return sum(
        n for (d, k, s, _), n in monitor.counts.items() if d == "inbound" and k == kind and s == success
    )


async def test_a_batch_is_applied_in_order_per_thing(app: tuple[AppContext, httpx.AsyncClient]) -> None:
    ctx, client = app
    things = [await new_thing(client) for _ in range(3)]
    pipeline, monitor = inbound(ctx, Source(("telemetry",), (DEVICE,)), Published())
    batch = [ditto_message(things[i % 3], "/attributes/n", i) for i in range(30)]
    await pipeline.handle(batch)
    for index, thing_id in enumerate(things):
        body = (
            await client.get(f"/api/2/things/{thing_id}", params={"fields": "attributes,_revision"})
        ).json()
        assert body["attributes"]["n"] == 27 + index  # the last write of each thing won: order was kept
        assert body["_revision"] == 1 + 10
    assert counted(monitor, "consumed", True) == 30
    assert counted(monitor, "acknowledged", True) == 30


async def test_failures_are_logged_and_do_not_stop_the_batch(
    app: tuple[AppContext, httpx.AsyncClient],
) -> None:
    ctx, client = app
    thing_id = await new_thing(client)
    stranger = Source(("telemetry",), ("integration:stranger",))
    pipeline, monitor = inbound(ctx, Source(("telemetry",), (DEVICE,)), Published())
    refused, refused_monitor = inbound(ctx, stranger, Published())
    not_json = ExternalMessage(text="{not json", address="telemetry")
    await pipeline.handle([not_json, ditto_message(thing_id, "/attributes/ok", True)])
    await refused.handle([ditto_message(thing_id, "/attributes/stranger", True)])
    attributes = (await client.get(f"/api/2/things/{thing_id}/attributes")).json()
    assert attributes == {"ok": True}
    assert counted(monitor, "mapped", False) == 1
    assert counted(refused_monitor, "acknowledged", False) == 1
    (entry,) = refused_monitor.logs
    assert entry.level == "failure" and entry.entity_id == thing_id
    assert "things:thing.notfound" in entry.message or "things:" in entry.message
    (mapping_failure,) = monitor.logs
    assert mapping_failure.type == "mapped"


async def test_responses_and_errors_go_to_the_reply_target(app: tuple[AppContext, httpx.AsyncClient]) -> None:
    ctx, client = app
    thing_id = await new_thing(client)
    reply = ReplyTarget(
        address="replies/{{ header:device }}", header_mapping={"device": "{{ header:device }}"}
    )
    published = Published()
    pipeline, _ = inbound(ctx, Source(("telemetry",), (DEVICE,), reply_target=reply), published)
    ok = ditto_message(thing_id, "/attributes/a", 1, device="d1")
    bad = ditto_message(thing_id, "/attributes/a", 2, device="d2")
    bad_body = json.loads(bad.text or "")
    bad_body["topic"] = bad_body["topic"].replace("org.conn/", "org.conn/missing-")
    bad.text = json.dumps(bad_body)
    await pipeline.handle([ok, bad])
    await published.wait_for(2)
    by_address = {m.address: json.loads(m.text_payload or "") for m, _ in published.messages}
    assert by_address["replies/d1"]["status"] == 201  # the attribute was created
    assert (
        by_address["replies/d1"]["headers"]["correlation-id"]
        == json.loads(ok.text or "")["headers"]["correlation-id"]
    )
    assert by_address["replies/d2"]["topic"].endswith("/things/twin/errors")
    assert by_address["replies/d2"]["value"]["status"] in (403, 404)
    assert {m.headers.get("device") for m, _ in published.messages} == {"d1", "d2"}


async def test_enforcement_refuses_commands_for_other_things(
    app: tuple[AppContext, httpx.AsyncClient],
) -> None:
    ctx, client = app
    thing_id = await new_thing(client)
    other_id = await new_thing(client)
    source = Source(
        ("telemetry",),
        (DEVICE,),
        enforcement=Enforcement("{{ header:device_id }}", ("{{ thing:id }}",)),
    )
    pipeline, monitor = inbound(ctx, source, Published())
    own, foreign = (
        ditto_message(thing_id, "/attributes/own", 1),
        ditto_message(other_id, "/attributes/own", 1),
    )
    for message in (own, foreign):  # a transport header, e.g. set by the device's gateway
        message.headers["device_id"] = thing_id
    await pipeline.handle([own, foreign])
    assert (await client.get(f"/api/2/things/{thing_id}/attributes/own")).status_code == 200
    assert (await client.get(f"/api/2/things/{other_id}/attributes/own")).status_code == 404
    assert counted(monitor, "enforced", False) == 1


async def test_an_unavailable_store_is_not_acknowledged(app: tuple[AppContext, httpx.AsyncClient]) -> None:
    ctx, client = app
    thing_id = await new_thing(client)
    pipeline, _ = inbound(ctx, Source(("telemetry",), (DEVICE,)), Published())
    await ctx.store.close()
    with pytest.raises(StoreUnavailable):
        await pipeline.handle([ditto_message(thing_id, "/attributes/lost", 1)])


async def test_targets_publish_the_events_their_subjects_may_read(
    app: tuple[AppContext, httpx.AsyncClient],
) -> None:
    ctx, client = app
    published = Published()
    events = TargetTopic("twin/events", filter='eq(attributes/kind,"sensor")', extra_fields="attributes/kind")
    target = Target(
        address="things/{{ thing:namespace }}/{{ thing:name }}/{{ topic:action }}",
        topics=(events,),
        authorization_context=(DEVICE,),
        header_mapping={"thing": "{{ thing:id }}", "subject": "{{ topic:action-subject }}"},
    )
    blind = Target(address="blind", topics=(TargetTopic("twin/events"),), authorization_context=("x:nobody",))
    connection = Connection("conn-2", "mqtt", "open", "tcp://127.0.0.1:1", targets=(target, blind))
    monitor = ConnectionMonitor(connection.id)
    routes = [compile_target(t, mappers_of(connection, t.payload_mapping)) for t in connection.targets]
    pipeline = OutboundPipeline(connection, routes, ctx.hub, ctx.messages, monitor, published, utc_now)
    pipeline.start()
    try:
        await asyncio.sleep(0)  # the pumps subscribe when they first run
        sensor = await new_thing(client, attributes={"kind": "sensor"})
        await new_thing(client, attributes={"kind": "vehicle"})
        r = await client.put(f"/api/2/things/{sensor}/attributes/temperature", json=21.5)
        assert r.status_code == 201
        await published.wait_for(2)
        await ctx.hub.drain()
        assert len(published.messages) == 2  # the vehicle did not match, the blind target sees nothing
        created, modified = (json.loads(m.text_payload or "") for m, _ in published.messages)
        assert created["topic"].endswith("/things/twin/events/created")
        assert modified["path"] == "/attributes/temperature" and modified["value"] == 21.5
        assert modified["extra"] == {"attributes": {"kind": "sensor"}}
        message, used = published.messages[1]
        namespace, name = sensor.split(":")
        assert message.address == f"things/{namespace}/{name}/created"
        assert message.headers["thing"] == sensor
        assert used is target
    finally:
        await pipeline.stop()
    assert ctx.hub.subscribers == 0
