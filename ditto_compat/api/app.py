"""The ASGI application: Ditto's HTTP API v2 on Starlette.

Starlette rather than FastAPI: Ditto's API has its own error contract and header semantics, and the hot paths
keep Thing JSON as plain dicts (DESIGN.md conventions), so request models and per-request validation would be
overhead without benefit. Routes stay thin: authenticate, parse a command, call the dispatcher, render.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from ditto_compat.api.connections import connections_endpoint
from ditto_compat.api.context import AppContext
from ditto_compat.api.http import error_response
from ditto_compat.api.metrics import RequestMetricsMiddleware, metrics_endpoint
from ditto_compat.api.piggyback import piggyback_connectivity
from ditto_compat.api.policies import policies_endpoint
from ditto_compat.api.search import count_things, search_things
from ditto_compat.api.status import check_permissions_endpoint, health, whoami
from ditto_compat.api.things import things_endpoint
from ditto_compat.api.ws import ws_endpoint
from ditto_compat.auth.authenticator import Authenticator
from ditto_compat.auth.htpasswd import Htpasswd
from ditto_compat.connectivity.manager import ConnectionManager, RuntimeFactory
from ditto_compat.connectivity.model import Connection
from ditto_compat.connectivity.monitor import ConnectionMonitor
from ditto_compat.connectivity.runtime import ConnectionRuntime
from ditto_compat.errors import MethodNotAllowed, ResourceNotFound
from ditto_compat.persistence.factory import create_store
from ditto_compat.persistence.ports import Store
from ditto_compat.service.acks import AckRouter
from ditto_compat.service.dispatcher import Dispatcher
from ditto_compat.service.hub import EventHub
from ditto_compat.service.messages import MessageRouter
from ditto_compat.service.policies import PolicyService
from ditto_compat.service.policy_announcements import PolicyAnnouncer
from ditto_compat.service.search import SearchService
from ditto_compat.service.signals import SignalHandler
from ditto_compat.settings import Settings

log = logging.getLogger(__name__)

ALL_METHODS = ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def build_context(
    settings: Settings, store: Store | None = None, runtime_factory: RuntimeFactory | None = None
) -> AppContext:
    users = Htpasswd.from_file(settings.htpasswd) if settings.htpasswd else Htpasswd.single("ditto", "ditto")
    devops = Htpasswd.single(settings.devops_user, settings.devops_password)
    authenticator = Authenticator(users, pre_authenticated=settings.pre_authenticated, devops=devops)
    if store is None:
        store = create_store(
            data_dir=settings.data_dir,
            mongo_uri=settings.mongo_uri,
            mongo_database=settings.mongo_database,
            sqlite_synchronous=settings.sqlite_synchronous,
            journal_retention=settings.journal_retention,
        )
    dispatcher = Dispatcher(store)
    # one enforcer cache for Things and Policies: a policy compiled for either serves both
    policies = PolicyService(
        store,
        dispatcher.enforcers,
        expiry_granularity=timedelta(seconds=settings.policy_subject_expiry_granularity_s),
    )
    announcements = PolicyAnnouncer(store)
    policies.on_written(announcements.policy_written)
    dispatcher.on_policy_written(announcements.policy_written)
    acks = AckRouter()
    hub = EventHub(
        dispatcher.thing_enforcer, on_withheld=lambda change, owners: acks.withheld(change.headers, owners)
    )
    dispatcher.subscribe(hub.publish)
    messages = MessageRouter(dispatcher.visible_thing_enforcer)
    search = SearchService(dispatcher)
    signals = SignalHandler(dispatcher, policies, acks, messages)

    def create_runtime(connection: Connection, monitor: ConnectionMonitor) -> ConnectionRuntime:
        # imported on first use: the broker clients load only once a connection is opened
        from ditto_compat.connectivity.runtime_factory import create_runtime as create

        return create(
            connection,
            monitor,
            signals=signals,
            hub=hub,
            messages=messages,
            acks=acks,
            announcer=announcements,
            oauth2_allow_http=settings.oauth2_allow_http,
        )

    return AppContext(
        settings,
        store,
        dispatcher,
        authenticator,
        policies,
        search,
        hub,
        messages,
        acks,
        ConnectionManager(store, runtime_factory or create_runtime, lease_s=settings.connection_lease_s),
        announcements,
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return error_response(MethodNotAllowed(), None)
    return error_response(ResourceNotFound(f"The resource '{request.url.path}' does not exist."), None)


def create_app(
    settings: Settings, *, store: Store | None = None, runtime_factory: RuntimeFactory | None = None
) -> Starlette:
    """``runtime_factory`` replaces the one that runs connections on real brokers (tests only)."""
    ctx = build_context(settings, store, runtime_factory)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ctx.store.open()
        ctx.hub.start()
        await ctx.announcements.start()  # before anything can write a policy
        # registers the persisted connections; opening them goes on in the background and never holds this up
        await ctx.connections.start()
        ctx.ready = True
        log.info("ditto-compat ready on %s storage", settings.storage_name)
        try:
            yield
        finally:
            ctx.ready = False
            await ctx.connections.stop()
            await ctx.hub.stop()
            await ctx.announcements.stop()
            await ctx.store.close()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/api/2/whoami", whoami, methods=["GET"]),
        Route("/api/2/checkPermissions", check_permissions_endpoint, methods=["POST"]),
        Route("/api/2/things", things_endpoint, methods=ALL_METHODS),
        Route("/api/2/things/{rest:path}", things_endpoint, methods=ALL_METHODS),
        Route("/api/2/search/things", search_things, methods=["GET", "POST"]),
        Route("/api/2/search/things/count", count_things, methods=["GET", "POST"]),
        Route("/api/2/policies", policies_endpoint, methods=ALL_METHODS),
        Route("/api/2/policies/{rest:path}", policies_endpoint, methods=ALL_METHODS),
        Route("/api/2/connections", connections_endpoint, methods=ALL_METHODS),
        Route("/api/2/connections/{rest:path}", connections_endpoint, methods=ALL_METHODS),
        Route("/devops/piggyback/connectivity", piggyback_connectivity, methods=ALL_METHODS),
        WebSocketRoute("/ws/2", ws_endpoint),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_found},
        middleware=[Middleware(RequestMetricsMiddleware, metrics=ctx.http_metrics)],
    )
    app.state.ctx = ctx
    return app
