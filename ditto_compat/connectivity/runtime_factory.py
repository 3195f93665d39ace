"""Which :class:`~ditto_compat.connectivity.runtime.ConnectionRuntime` runs a connection
(``connectivity-overview``: one client per connection type), wired into the
:class:`~ditto_compat.connectivity.manager.ConnectionManager` by the application."""

from __future__ import annotations

from ditto_compat.connectivity.clients import create_client
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection
from ditto_compat.connectivity.monitor import ConnectionMonitor
from ditto_compat.connectivity.running import RunningConnection
from ditto_compat.connectivity.runtime import ConnectionRuntime
from ditto_compat.service.acks import AckRouter
from ditto_compat.service.dispatcher import utc_now
from ditto_compat.service.hub import EventHub
from ditto_compat.service.messages import MessageRouter
from ditto_compat.service.policy_announcements import PolicyAnnouncer
from ditto_compat.service.signals import SignalHandler


def create_runtime(
    connection: Connection,
    monitor: ConnectionMonitor,
    *,
    signals: SignalHandler,
    hub: EventHub,
    messages: MessageRouter,
    acks: AckRouter | None = None,
    announcer: PolicyAnnouncer | None = None,
    oauth2_allow_http: bool = False,
) -> ConnectionRuntime:
    """A runtime for ``connection``, unopened; raises a DittoError for a type without a client."""

    def expired(message: ExternalMessage) -> None:
        # never applied, so it must be visible as dropped: counted and logged like a refused message
        monitor.record("inbound", "dropped", True, message.address)
        monitor.log(
            "source",
            "dropped",
            "failure",
            "The message expired (creation-time + ttl) before it could be applied.",
            timestamp=utc_now(),
            address=message.address,
            correlation_id=message.header("correlation-id"),
        )

    return RunningConnection(
        connection,
        monitor,
        client=create_client(connection, on_expired=expired, oauth2_allow_http=oauth2_allow_http),
        signals=signals,
        hub=hub,
        messages=messages,
        clock=utc_now,
        acks=acks,
        announcer=announcer,
    )
