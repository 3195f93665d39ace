"""``/metrics`` (Prometheus text format 0.0.4) and the connection components of ``/health``, in-process on both
backends. The exposition is parsed by a strict parser written for this test (no Prometheus client library is
installed): every sample must belong to a family declared before it, label values must be well escaped, and
histogram buckets must be cumulative and end in ``+Inf`` equal to ``_count``."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from ditto_compat.api.app import create_app
from ditto_compat.api.metrics import ROUTES, route_template
from ditto_compat.settings import Settings
from tests.api.conftest import DITTO, basic, new_id
from tests.api.tcp_runtime import LineServer, TcpRuntimes

DEVOPS = basic("devops", "foobar")
DEADLINE_S = 10.0
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# ----------------------------------------------------------------------------------------------- the parser
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    name: str
    kind: str
    help: str
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, suffix: str = "", **labels: str) -> float:
        return self.samples[(self.name + suffix, tuple(sorted(labels.items())))]

    def values(self, **labels: str) -> dict[Labels, float]:
        """Samples (of a counter or gauge) whose labels include ``labels``."""
        wanted = set(labels.items())
        return {key: v for (_, key), v in self.samples.items() if wanted <= set(key)}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def _parse_labels(text: str) -> Labels:
    labels: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        assert match, f"bad labels: {text!r}"
        labels.append((match.group(1), _unescape(match.group(2))))
        position = match.end()
    names = [name for name, _ in labels]
    assert len(names) == len(set(names)), f"repeated label in {text!r}"
    return tuple(sorted(labels))


def parse(text: str) -> dict[str, Family]:
    """The families of an exposition; fails on anything the 0.0.4 text format does not allow."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    families: dict[str, Family] = {}
    helps: dict[str, str] = {}
    current: Family | None = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in helps, f"HELP of {name} twice"
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert kind in _SUFFIXES, line
            assert name not in families, f"family {name} declared twice"
            current = families[name] = Family(name, kind, helps.get(name, ""))
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            assert current is not None, f"sample before any TYPE: {line!r}"
            sample_name, label_text, value_text = match.groups()
            assert sample_name in {current.name + s for s in _SUFFIXES[current.kind]}, (
                f"{sample_name} outside its family ({current.name})"
            )
            value = float(value_text)  # accepts +Inf, -Inf, NaN as the format writes them
            key = (sample_name, _parse_labels(label_text or ""))
            assert key not in current.samples, f"sample repeated: {line!r}"
            current.samples[key] = value
    for family in families.values():
        if family.kind == "counter":
            assert family.name.endswith("_total"), family.name
            assert all(v >= 0 for v in family.samples.values()), family.name
        if family.kind == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    series: dict[Labels, list[tuple[float, float]]] = {}
    for (name, labels), value in family.samples.items():
        if name.endswith("_bucket"):
            le = dict(labels)["le"]
            rest = tuple(item for item in labels if item[0] != "le")
            series.setdefault(rest, []).append((float(le), value))
    for labels, buckets in series.items():
        buckets.sort()
        assert buckets[-1][0] == math.inf, f"no +Inf bucket for {labels}"
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), f"buckets of {labels} are not cumulative: {counts}"
        assert family.samples[(family.name + "_count", labels)] == counts[-1]
        assert (family.name + "_sum", labels) in family.samples


def test_the_parser_refuses_what_the_format_does_not_allow() -> None:
    good = '# HELP a_total x\n# TYPE a_total counter\na_total{k="v \\"q\\""} 1\n'
    assert parse(good)["a_total"].value(k='v "q"') == 1
    for bad in (
        "a_total 1\n",  # no TYPE
        "# TYPE a_total counter\na_total 1",  # no final line feed
        "# TYPE a_total counter\nb_total 1\n",  # outside its family
        '# TYPE a_total counter\na_total{k="v} 1\n',  # unterminated label value
        "# TYPE h histogram\n"
        'h_bucket{le="1.0"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',  # not cumulative
    ):
        with pytest.raises(AssertionError):
            parse(bad)


# -------------------------------------------------------------------------------------------------- helpers
async def scrape(client: httpx.AsyncClient) -> dict[str, Family]:
    response = await client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def eventually(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_S}s: {what}")
        await asyncio.sleep(0.02)


def requests_of(families: dict[str, Family], method: str, route: str) -> dict[str, float]:
    """``ditto_http_requests_total`` of one method and route, by status."""
    found = families["ditto_http_requests_total"].values(method=method, route=route)
    return {dict(labels)["status"]: value for labels, value in found.items()}


# ---------------------------------------------------------------------------------------------------- tests
def test_route_templates_are_bounded_and_never_contain_ids() -> None:
    thing = "/api/2/things/org.test:t1"
    cases = {
        "/health": "/health",
        "/api/2/things": "/api/2/things",
        "/api/2/things/": "/api/2/things",
        thing: "/api/2/things/{thingId}",
        thing + "/attributes/a/b/c": "/api/2/things/{thingId}/attributes/{path*}",
        thing
        + "/features/lamp/properties/on": "/api/2/things/{thingId}/features/{featureId}/properties/{path*}",
        thing + "/features/lamp/inbox/messages/a/b": (
            "/api/2/things/{thingId}/features/{featureId}/inbox/messages/{subject*}"
        ),
        thing + "/inbox/claim": "/api/2/things/{thingId}/inbox/claim",
        thing + "/whatever": "unmatched",
        "/api/2/policies/org.test:p/entries/DEFAULT/resources/thing:%2F": (
            "/api/2/policies/{policyId}/entries/{label}/resources/{resource*}"
        ),
        "/api/2/connections/c-1/metrics": "/api/2/connections/{connectionId}/metrics",
        "/": "unmatched",
        "/favicon.ico": "unmatched",
    }
    assert {path: route_template(path) for path in cases} == cases
    # every template names itself (a path shaped like it), so the table and the matcher agree
    for template in ROUTES:
        example = re.sub(r"\{[^}]*\*\}", "x/y", re.sub(r"\{[^}*]*\}", "x", template))
        assert route_template(example) == template, template


async def test_requests_are_counted_by_template_and_timed(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    route = "/api/2/things/{thingId}/attributes/{path*}"
    counted = requests_of(before, "PUT", route)
    thing_ids = [new_id() for _ in range(3)]
    for thing_id in thing_ids:
        thing = {"attributes": {"a": {"b": 0}}}
        assert (await client.put(f"/api/2/things/{thing_id}", json=thing)).status_code == 201
        assert (await client.put(f"/api/2/things/{thing_id}/attributes/a/b", json=1)).status_code == 204
    assert (await client.get(f"/api/2/things/{new_id()}/attributes/a")).status_code == 404

    after = await scrape(client)
    assert requests_of(after, "PUT", route) == {"204": counted.get("204", 0) + 3}
    assert requests_of(after, "GET", route)["404"] >= 1
    assert requests_of(after, "PUT", "/api/2/things/{thingId}")["201"] >= 3
    # the previous scrape itself was counted
    assert requests_of(after, "GET", "/metrics")["200"] >= 1
    # no raw path, no id, in any label
    labels = {v for family in after.values() for (_, key) in family.samples for _, v in key}
    assert not any(thing_id in label for thing_id in thing_ids for label in labels)

    durations = after["ditto_http_request_duration_seconds"]
    assert durations.kind == "histogram"
    count = durations.value("_count", method="PUT", route=route)
    assert count == sum(requests_of(after, "PUT", route).values())
    bounds = sorted(
        float(dict(key)["le"])
        for (name, key) in durations.samples
        if name.endswith("_bucket") and dict(key)["route"] == route and dict(key)["method"] == "PUT"
    )
    assert bounds == [*BUCKETS, math.inf]
    total = durations.value("_sum", method="PUT", route=route)
    assert 0 < total < count * 10
    assert durations.value("_bucket", method="PUT", route=route, le="+Inf") == count


async def test_unmatched_paths_and_methods_share_one_label(client: httpx.AsyncClient) -> None:
    for i in range(3):
        assert (await client.get(f"/nothing/{i}")).status_code == 404
    assert (await client.request("PROPFIND", "/api/2/things")).status_code == 405
    families = await scrape(client)
    assert requests_of(families, "GET", "unmatched")["404"] >= 3
    assert requests_of(families, "OTHER", "/api/2/things")["405"] >= 1
    routes = {dict(key)["route"] for (_, key) in families["ditto_http_requests_total"].samples}
    assert routes <= {*ROUTES, "unmatched"}


async def test_things_and_policies_follow_creates_and_deletes(settings: Settings) -> None:
    app = create_app(settings)
    app.state.ctx.live_counts.ttl_s = 0.0  # count on every scrape: this test is about the store's count
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=DITTO
        ) as client:
            first = await scrape(client)
            things, policies = first["ditto_things"].value(), first["ditto_policies"].value()
            created = [new_id() for _ in range(4)]
            for thing_id in created:
                assert (await client.put(f"/api/2/things/{thing_id}", json={})).status_code == 201
            families = await scrape(client)
            assert families["ditto_things"].value() == things + 4
            # each new Thing got its own default policy
            assert families["ditto_policies"].value() == policies + 4
            for thing_id in created[:3]:
                assert (await client.delete(f"/api/2/things/{thing_id}")).status_code == 204
            families = await scrape(client)
            assert families["ditto_things"].value() == things + 1
            assert families["ditto_storage_up"].value(backend=settings.storage_name) == 1


async def test_counts_are_cached_for_a_few_seconds(client: httpx.AsyncClient) -> None:
    things = (await scrape(client))["ditto_things"].value()
    assert (await client.put(f"/api/2/things/{new_id()}", json={})).status_code == 201
    # within the cache's lifetime the scrape reuses the count instead of counting again
    assert (await scrape(client))["ditto_things"].value() == things


async def test_event_and_process_metrics(client: httpx.AsyncClient, settings: Settings) -> None:
    families = await scrape(client)
    for name in ("ditto_events_delivered_total", "ditto_events_dropped_total", "ditto_messages_sent_total"):
        assert families[name].kind == "counter" and families[name].value() >= 0
    assert families["ditto_event_subscribers"].value() == 0
    rss = families["process_resident_memory_bytes"].value()
    assert 10 * 2**20 < rss < 4 * 2**30
    assert families["process_cpu_seconds_total"].value() > 0
    assert families["process_start_time_seconds"].value() <= time.time()
    if settings.storage_name == "sqlite":
        commits = families["ditto_store_commits_total"].value()
        transactions = families["ditto_store_transactions_total"].value()
        assert (await client.put(f"/api/2/things/{new_id()}", json={})).status_code == 201
        families = await scrape(client)
        assert families["ditto_store_commits_total"].value() == commits + 1
        assert families["ditto_store_transactions_total"].value() == transactions + 1


# ------------------------------------------------------------------------------------------- connections
@pytest.fixture
async def devops(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, runtime_factory=TcpRuntimes())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=DEVOPS) as c:
            yield c


def definition(port: int, status: str) -> dict[str, object]:
    return {
        "name": "metrics-test",
        "connectionType": "mqtt",
        "connectionStatus": status,
        "uri": f"tcp://127.0.0.1:{port}",
        "sources": [{"addresses": ["telemetry/#"], "authorizationContext": ["nginx:ditto"]}],
    }


async def test_connection_metrics_and_health(devops: httpx.AsyncClient) -> None:
    server = await LineServer().start()
    try:
        server.lines = [b"one", b"two", b"three"]
        opened = (await devops.post("/api/2/connections", json=definition(server.port, "open"))).json()["id"]
        closed = (await devops.post("/api/2/connections", json=definition(server.port, "closed"))).json()[
            "id"
        ]
        # a connection that should be open but has nothing to connect to
        refused_port = server.port
        await server.stop()
        server = await LineServer().start()
        failed = (await devops.post("/api/2/connections", json=definition(refused_port, "open"))).json()["id"]

        async def consumed() -> bool:
            family = (await scrape(devops))["ditto_connection_messages_total"]
            labels = {"connection": opened, "direction": "inbound", "kind": "consumed", "outcome": "success"}
            return family.value(**labels) == 3

        await eventually(consumed, "the three lines are counted")
        families = await scrape(devops)
        connections = families["ditto_connections"]
        assert connections.value(status="open") == 1
        assert connections.value(status="closed") == 1
        assert connections.value(status="failed") == 1
        assert connections.value(status="unknown") == 0
        messages = families["ditto_connection_messages_total"]
        # Ditto's kinds are there from the start, at 0, for every connection
        assert (
            messages.value(connection=closed, direction="outbound", kind="published", outcome="failure") == 0
        )
        assert set(messages.values(connection=failed).values()) == {0}

        response = await devops.get("/health", headers={"Authorization": ""})
        assert response.status_code == 200
        body = response.json()
        # a failed connection is the component's problem, not the server's
        assert body["status"] == "UP"
        component = body["components"]["connections"]
        assert component["status"] == "DOWN"
        by_id = {entry["id"]: entry for entry in component["connections"]}
        assert by_id[opened] == {
            "id": opened,
            "status": "UP",
            "connectionStatus": "open",
            "liveStatus": "open",
        }
        assert by_id[closed] == {
            "id": closed,
            "status": "UP",
            "connectionStatus": "closed",
            "liveStatus": "closed",
        }
        assert by_id[failed]["status"] == "DOWN"
        assert by_id[failed]["liveStatus"] == "failed"
        assert "ConnectionRefusedError" in by_id[failed]["statusDetails"]
        assert by_id[failed]["recoveryStatus"] == "ongoing"
        assert [entry["id"] for entry in component["connections"]] == sorted(by_id)

        # deleted: gone from both
        for connection_id in (failed, opened):
            assert (await devops.delete(f"/api/2/connections/{connection_id}")).status_code == 204
        body = (await devops.get("/health")).json()
        assert [e["id"] for e in body["components"]["connections"]["connections"]] == [closed]
        assert body["components"]["connections"]["status"] == "UP"
        families = await scrape(devops)
        assert {dict(key)["connection"] for key in families["ditto_connection_messages_total"].values()} == {
            closed
        }
        assert families["ditto_connections"].value(status="open") == 0
    finally:
        await server.stop()


async def test_health_without_connections(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"Authorization": ""})
    assert response.status_code == 200
    body = response.json()
    assert body["components"]["connections"] == {"status": "UP", "connections": []}
    assert body["components"]["storage"]["status"] == "UP"
