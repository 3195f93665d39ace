"""What an MQTT connection definition asks of the client (Ditto docs ``connectivity-protocol-bindings-mqtt``
and ``-mqtt5``): broker address and credentials from the URI, ``specificConfig`` options and the
subscriptions of the sources, parsed once and checked before the first connection attempt."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ditto_compat.connectivity.clients.base import ConnectionFailed
from ditto_compat.connectivity.clients.specific_config import duration_s, flag, integer
from ditto_compat.connectivity.clients.tls import TlsSettingsInvalid, tls_context
from ditto_compat.connectivity.model import Connection

DEFAULT_PORTS = {"tcp": 1883, "ssl": 8883}


@dataclass(frozen=True, slots=True)
class LastWill:
    topic: str
    qos: int
    retain: bool
    message: str


@dataclass(frozen=True, slots=True)
class Subscription:
    topic_filter: str
    qos: int
    source_index: int


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    client_id: str
    clean_session: bool
    keep_alive_s: int
    last_will: LastWill | None
    redelivery_delay_s: float
    subscriptions: tuple[Subscription, ...]
    # ssl:// only: validateCertificates, ca and a client certificate (clients/tls.py)
    tls_context: ssl.SSLContext | None

    @property
    def address(self) -> str:
        return f"{'ssl' if self.tls else 'tcp'}://{self.host}:{self.port}"


def parse_mqtt_settings(connection: Connection) -> MqttSettings:
    """Raises :class:`ConnectionFailed` naming what is wrong with the URI or ``specificConfig``."""
    parts = urlsplit(connection.uri)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConnectionFailed(f"MQTT URI must start with tcp:// or ssl://: {connection.uri!r}")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ConnectionFailed(f"MQTT URI has an invalid port: {connection.uri!r}") from None
    if not parts.hostname:
        raise ConnectionFailed(f"MQTT URI has no host: {connection.uri!r}")
    config = connection.specific_config
    will_topic = str(config.get("lastWillTopic") or "")
    last_will = (
        LastWill(
            topic=will_topic,
            qos=integer(config, "lastWillQos", 0, 0, 2),
            retain=flag(config, "lastWillRetain", False),
            message=str(config.get("lastWillMessage") or ""),
        )
        if will_topic
        else None
    )
    subscriptions = tuple(
        Subscription(address, _source_qos(source.qos), source.index)
        for source in connection.sources
        for address in source.addresses
    )
    try:
        context = tls_context(connection) if scheme == "ssl" else None
    except TlsSettingsInvalid as error:
        raise ConnectionFailed(str(error)) from None
    return MqttSettings(
        host=parts.hostname,
        port=port,
        tls=scheme == "ssl",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        client_id=str(config.get("clientId") or connection.id),
        clean_session=flag(config, "cleanSession", False),
        keep_alive_s=max(1, round(duration_s(config, "keepAlive", 60.0))),
        last_will=last_will,
        # Ditto's minimum for ``reconnectForRedeliveryDelay`` is one second.
        redelivery_delay_s=max(1.0, duration_s(config, "reconnectForRedeliveryDelay", 2.0)),
        subscriptions=subscriptions,
        tls_context=context,
    )


def _source_qos(qos: int | None) -> int:
    if qos is None:
        return 0
    if qos not in (0, 1, 2):
        raise ConnectionFailed(f"MQTT source qos must be 0, 1 or 2: {qos}")
    return qos
