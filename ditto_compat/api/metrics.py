"""``/metrics``: the server's figures in the Prometheus text exposition format (version 0.0.4), and the ASGI
middleware that counts and times every HTTP request.

Unauthenticated, like ``/health`` and like the metrics port of Ditto's own services: it shows counts, never
entity content. The only ids it names are those of connections; a deployment that must hide them keeps
``/metrics`` off its public proxy (the nginx configuration answers it only from inside).

Requests are labelled with a route *template* (``/api/2/things/{thingId}/attributes/{path}``), never the raw
path, so the number of time series stays bounded however many Things there are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ditto_compat.api.context import AppContext
from ditto_compat.api.http import ditto_endpoint
from ditto_compat.connectivity.monitor import INBOUND_KINDS, OUTBOUND_KINDS
from ditto_compat.errors import DittoError
from ditto_compat.persistence.ports import Collection, StoreUnavailable
from ditto_compat.service.metrics import CONTENT_TYPE, Exposition, Labels, RequestMetrics, render_process

log = logging.getLogger(__name__)

UNMATCHED: Final = "unmatched"
# raw paths whose template is remembered (a few hundred kB at most)
ROUTE_CACHE_SIZE: Final = 4096
METHODS: Final = frozenset({"GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Ditto's liveStatus values (connectivity-manage-connections ``/status``): every one is reported, 0 included,
# so that a dashboard's series exist before the first connection fails.
LIVE_STATUSES: Final = ("open", "closed", "failed", "unknown")

# The routes of the API as templates: ``{name}`` is one path segment, ``{name*}`` the rest of the path (a JSON
# pointer, a message subject, a policy resource). Anything else is labelled ``unmatched``.
ROUTES: Final = (
    "/health",
    "/metrics",
    "/ws/2",
    "/api/2/whoami",
    "/api/2/checkPermissions",
    "/api/2/search/things",
    "/api/2/search/things/count",
    "/api/2/things",
    "/api/2/things/{thingId}",
    "/api/2/things/{thingId}/policyId",
    "/api/2/things/{thingId}/definition",
    "/api/2/things/{thingId}/attributes",
    "/api/2/things/{thingId}/attributes/{path*}",
    "/api/2/things/{thingId}/features",
    "/api/2/things/{thingId}/features/{featureId}",
    "/api/2/things/{thingId}/features/{featureId}/definition",
    "/api/2/things/{thingId}/features/{featureId}/properties",
    "/api/2/things/{thingId}/features/{featureId}/properties/{path*}",
    "/api/2/things/{thingId}/features/{featureId}/desiredProperties",
    "/api/2/things/{thingId}/features/{featureId}/desiredProperties/{path*}",
    "/api/2/things/{thingId}/features/{featureId}/inbox/messages/{subject*}",
    "/api/2/things/{thingId}/features/{featureId}/outbox/messages/{subject*}",
    "/api/2/things/{thingId}/inbox/claim",
    "/api/2/things/{thingId}/inbox/messages/{subject*}",
    "/api/2/things/{thingId}/outbox/messages/{subject*}",
    "/api/2/policies",
    "/api/2/policies/{policyId}",
    "/api/2/policies/{policyId}/entries",
    "/api/2/policies/{policyId}/entries/{label}",
    "/api/2/policies/{policyId}/entries/{label}/subjects",
    "/api/2/policies/{policyId}/entries/{label}/subjects/{subjectId*}",
    "/api/2/policies/{policyId}/entries/{label}/resources",
    "/api/2/policies/{policyId}/entries/{label}/resources/{resource*}",
    "/api/2/policies/{policyId}/entries/{label}/importable",
    "/api/2/policies/{policyId}/entries/{label}/actions/{action}",
    "/api/2/policies/{policyId}/imports",
    "/api/2/policies/{policyId}/imports/{importedPolicyId}",
    "/api/2/policies/{policyId}/actions/{action}",
    "/api/2/connections",
    "/api/2/connections/{connectionId}",
    "/api/2/connections/{connectionId}/command",
    "/api/2/connections/{connectionId}/status",
    "/api/2/connections/{connectionId}/metrics",
    "/api/2/connections/{connectionId}/logs",
)


# ------------------------------------------------------------------------------------------ route templates
@dataclass
class _Node:
    """One level of the route trie: literal segments first, then one variable segment, then a variable rest."""

    template: str | None = None  # the route that ends here
    literals: dict[str, _Node] = field(default_factory=dict)
    variable: _Node | None = None
    rest: str | None = None  # the route whose last variable takes every remaining segment


def _build(templates: Iterable[str]) -> _Node:
    """The trie of the templates. Matching never backtracks, so no level may have both literals and a variable
    rest: ``ROUTES`` keeps to that, and this refuses templates that do not."""
    root = _Node()
    for template in templates:
        node = root
        for segment in template.split("/")[1:]:
            if segment.endswith("*}"):
                node.rest = template
                break
            if segment.startswith("{"):
                node.variable = node.variable or _Node()
                node = node.variable
            else:
                node = node.literals.setdefault(segment, _Node())
        else:
            node.template = template
    _check(root)
    return root


def _check(node: _Node) -> None:
    if node.rest is not None and (node.literals or node.variable is not None):
        raise ValueError(f"ambiguous route templates next to {node.rest}")
    for child in (*node.literals.values(), *([node.variable] if node.variable is not None else [])):
        _check(child)


_ROUTES: Final = _build(ROUTES)


def route_template(path: str) -> str:
    """The template of the route ``path`` (the raw path: an encoded ``/`` inside an id or key does not split
    it) belongs to, or ``unmatched``. One trailing ``/`` is ignored."""
    if path.endswith("/") and len(path) > 1:
        path = path[:-1]
    node = _ROUTES
    segments = path.split("/")
    for i in range(1, len(segments)):
        segment = segments[i]
        child = node.literals.get(segment)
        if child is None:
            child = node.variable
        if child is None:
            return node.rest or UNMATCHED
        node = child
    return node.template or UNMATCHED


# ------------------------------------------------------------------------------------------------ middleware
class RequestMetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: WebSocket and streamed responses pass untouched).

    The duration ends when the response headers are sent: every API response is rendered before that, and an
    SSE stream's lifetime is not a latency. A request that fails without a response counts as 500, which is
    what the server error handler outside this middleware answers.
    """

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # raw path -> template: clients address the same resources again and again (a device its Thing)
        self._routes: dict[bytes, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False
        method = scope["method"]
        if method not in METHODS:
            method = "OTHER"
        raw: bytes | None = scope.get("raw_path")
        route = self._routes.get(raw) if raw is not None else None
        if route is None:
            route = route_template(raw.decode("latin-1").split("?", 1)[0] if raw else scope["path"])
            if raw is not None:
                if len(self._routes) >= ROUTE_CACHE_SIZE:
                    self._routes.clear()  # bounded without the bookkeeping of an LRU; refills with what is hot
                self._routes[raw] = route

        async def send_observed(message: Message) -> None:
            nonlocal observed
            if not observed and message["type"] == "http.response.start":
                observed = True
                self.metrics.observe(method, route, message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            if not observed:
                self.metrics.observe(method, route, 500, time.perf_counter() - started)


# ------------------------------------------------------------------------------------------------ /metrics
@ditto_endpoint
async def metrics_endpoint(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    out = Exposition()
    ctx.http_metrics.render(out)
    await _render_storage(ctx, out)
    _render_events(ctx, out)
    await _render_connections(ctx, out)
    render_process(out, ctx.started_at)
    return Response(out.render(), 200, media_type=CONTENT_TYPE)


async def _render_storage(ctx: AppContext, out: Exposition) -> None:
    health = await ctx.store.health()
    up = health.get("status") == "UP"
    out.family(
        "ditto_storage_up",
        "gauge",
        "1 when the storage answers (as /health's storage component), else 0.",
        [({"backend": ctx.store.name}, int(up))],
    )
    group = health.get("groupCommit")
    if isinstance(group, dict):
        out.family(
            "ditto_store_commits_total",
            "counter",
            "Commits applied by the SQLite writer (each the changes of one request or message).",
            [({}, int(group.get("commits", 0)))],
        )
        out.family(
            "ditto_store_transactions_total",
            "counter",
            "SQLite transactions the writer ran; commits per transaction is how well group commit batches.",
            [({}, int(group.get("rounds", 0)))],
        )
        out.family(
            "ditto_store_checkpoints_total",
            "counter",
            "WAL checkpoints the SQLite checkpointer thread ran (pages copied back into the database file).",
            [({}, int(group.get("checkpoints", 0)))],
        )
    if not up:
        return  # counting would only fail the same way
    counted: tuple[tuple[Collection, str, str], ...] = (
        ("things", "ditto_things", "Things"),
        ("policies", "ditto_policies", "Policies"),
    )
    for collection, name, what in counted:
        try:
            count = await ctx.live_counts.get(ctx.store, collection)
        except StoreUnavailable as exc:
            log.warning("counting %s for /metrics failed: %s", collection, exc)
            continue
        out.family(
            name,
            "gauge",
            f"{what} stored and not deleted (counted at most every few seconds).",
            [({}, count)],
        )


def _render_events(ctx: AppContext, out: Exposition) -> None:
    hub, messages = ctx.hub, ctx.messages
    out.family(
        "ditto_event_subscribers",
        "gauge",
        "Open event subscriptions: /ws/2 sessions, SSE streams and connection targets.",
        [({}, hub.subscribers)],
    )
    out.family(
        "ditto_events_delivered_total", "counter", "Events handed to subscribers.", [({}, hub.delivered)]
    )
    out.family(
        "ditto_events_dropped_total",
        "counter",
        "Events a subscriber could not take (its queue was full); such a subscriber is told and closed.",
        [({}, hub.dropped)],
    )
    out.family(
        "ditto_messages_sent_total",
        "counter",
        "Thing messages sent (over HTTP, /ws/2 or a connection).",
        [({}, messages.sent)],
    )
    out.family(
        "ditto_messages_delivered_total",
        "counter",
        "Thing messages offered to a receiver (a message may reach several).",
        [({}, messages.delivered)],
    )


async def _render_connections(ctx: AppContext, out: Exposition) -> None:
    manager = ctx.connections
    try:
        states = await manager.list_states()
    except StoreUnavailable as exc:
        log.warning("listing connections for /metrics failed: %s", exc)
        return
    by_status = dict.fromkeys(LIVE_STATUSES, 0)
    messages: list[tuple[Labels, float]] = []
    for state in states:
        connection_id = state.entity_id
        try:
            live = manager.status(connection_id).get("liveStatus", "unknown")
        except DittoError:
            live = "closed"  # stored, but a definition this version refuses: it does not run
        by_status[live if live in by_status else "unknown"] += 1
        messages.extend(_message_counts(ctx, connection_id))
    out.family(
        "ditto_connections",
        "gauge",
        "Connections by their live status (open, closed, failed, unknown while a first attempt runs).",
        (({"status": status}, n) for status, n in by_status.items()),
    )
    out.family(
        "ditto_connection_messages_total",
        "counter",
        "Messages of a connection by direction, Ditto metric kind and outcome, over all its addresses, since the "
        "connection was registered or its metrics were reset.",
        messages,
    )


def _message_counts(ctx: AppContext, connection_id: str) -> list[tuple[Labels, float]]:
    monitor = ctx.connections.monitor(connection_id)
    totals: dict[tuple[str, str, str], int] = {}
    # Ditto's always-reported kinds first, at 0, so that rates exist from the first scrape on
    for direction, kinds in (("inbound", INBOUND_KINDS), ("outbound", OUTBOUND_KINDS)):
        for kind in kinds:
            for outcome in ("success", "failure"):
                totals[(direction, kind, outcome)] = 0
    if monitor is not None:
        # addresses are summed: a target address may hold a placeholder (one per Thing), unbounded as a label
        for (direction, kind, success, _address), count in list(monitor.counts.items()):
            key = (direction, kind, "success" if success else "failure")
            totals[key] = totals.get(key, 0) + count
    return [
        ({"connection": connection_id, "direction": d, "kind": k, "outcome": o}, n)
        for (d, k, o), n in totals.items()
    ]
