"""Client adapters, one per connection type (``connectivity-overview``); see :mod:`.base` for what each does.

Broker libraries are imported only when a connection of their type is opened.
"""

from __future__ import annotations

from collections.abc import Callable

from ditto_compat.connectivity.clients.base import ClientAdapter
from ditto_compat.connectivity.clients.ssh_tunnel import TunnelledClient, tunnel_settings
from ditto_compat.connectivity.errors import ConnectionTypeUnsupported
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection


def create_client(
    connection: Connection,
    *,
    on_expired: Callable[[ExternalMessage], None] | None = None,
    oauth2_allow_http: bool = False,
) -> ClientAdapter:
    """The adapter for ``connection.connection_type``, behind an SSH tunnel when ``sshTunnel`` is enabled; raises
    :class:`ConnectionTypeUnsupported` for a type this server accepts in a definition but cannot open
    (``amqp-10``, ``hono``). ``on_expired`` hears of the messages a source drops unapplied because they expired
    (Kafka's ``creation-time`` + ``ttl``); ``oauth2_allow_http`` lets HTTP push use a token endpoint that is not
    https."""

    def direct(through: Connection) -> ClientAdapter:
        return _direct_client(through, on_expired=on_expired, oauth2_allow_http=oauth2_allow_http)

    client = direct(connection)  # refuses an unsupported type before any tunnel is opened
    tunnel = tunnel_settings(connection)
    return client if tunnel is None else TunnelledClient(connection, tunnel, direct)


def _direct_client(
    connection: Connection,
    *,
    on_expired: Callable[[ExternalMessage], None] | None,
    oauth2_allow_http: bool,
) -> ClientAdapter:
    kind = connection.connection_type
    if kind in ("mqtt", "mqtt-5"):
        from ditto_compat.connectivity.clients.mqtt import MqttClient

        return MqttClient(connection)
    if kind == "amqp-091":
        from ditto_compat.connectivity.clients.amqp import AmqpClient

        return AmqpClient(connection)
    if kind == "http-push":
        from ditto_compat.connectivity.clients.http_push import HttpPushClient

        return HttpPushClient(connection, oauth2_allow_http=oauth2_allow_http)
    if kind == "kafka":
        from ditto_compat.connectivity.clients.kafka import KafkaClient

        return KafkaClient(connection, on_expired=on_expired)
    raise ConnectionTypeUnsupported.of(kind)
