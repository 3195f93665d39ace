"""The connections the simulator publishes through: one fixed definition per broker type, created or brought
up to date through ``/api/2/connections`` (devops credentials) before the first message is sent.

Ditto's ``PUT /connections/{id}`` is documented as "create or update"; a server that only updates answers 404
for a new id, and then the connection is created with ``POST`` (a generated id) and found again by its name.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

MQTT_CONNECTION_ID = "simulator-mqtt"
KAFKA_CONNECTION_ID = "simulator-kafka"
MQTT_TOPIC_PREFIX = "ditto-compat/simulator"
KAFKA_TOPIC = "ditto-compat-simulator"
KAFKA_GROUP = "ditto-compat-simulator"


class ConnectionSetupError(RuntimeError):
    """The connection could not be created, or did not open in time (the message says why)."""


def mqtt_topic(thing_id: str) -> str:
    namespace, _, name = thing_id.partition(":")
    return f"{MQTT_TOPIC_PREFIX}/{namespace}/{name}"


def mqtt_connection(broker_uri: str, owner_subject: str) -> dict[str, Any]:
    return {
        "name": "ditto-compat simulator (MQTT)",
        "connectionType": "mqtt",
        "connectionStatus": "open",
        "uri": broker_uri,
        "failoverEnabled": True,
        "sources": [
            {
                "addresses": [f"{MQTT_TOPIC_PREFIX}/#"],
                "authorizationContext": [owner_subject],
                "qos": 1,
            }
        ],
        "targets": [],
    }


def kafka_connection(bootstrap_servers: str, owner_subject: str) -> dict[str, Any]:
    first = bootstrap_servers.split(",")[0].strip()
    return {
        "name": "ditto-compat simulator (Kafka)",
        "connectionType": "kafka",
        "connectionStatus": "open",
        "uri": f"tcp://{first}",
        "failoverEnabled": True,
        # "earliest" only matters while the group has no committed offset: the messages sent while the
        # consumer joins its group (seconds) are not lost.
        "specificConfig": {
            "bootstrapServers": bootstrap_servers,
            "groupId": KAFKA_GROUP,
            "consumerOffsetReset": "earliest",
        },
        "sources": [{"addresses": [KAFKA_TOPIC], "authorizationContext": [owner_subject], "qos": 1}],
        "targets": [],
    }


def _differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in wanted.items() if key != "targets") or bool(
        current.get("targets")
    )


async def _find(http: httpx.AsyncClient, connection_id: str, name: str) -> dict[str, Any] | None:
    listing = await http.get("/api/2/connections")
    if listing.status_code != 200:
        raise ConnectionSetupError(f"cannot list connections: {listing.status_code} {listing.text[:300]}")
    for connection in listing.json():
        if isinstance(connection, dict) and (
            connection.get("id") == connection_id or connection.get("name") == name
        ):
            return connection
    return None


async def ensure_connection(http: httpx.AsyncClient, connection_id: str, definition: dict[str, Any]) -> str:
    """Creates the connection, or updates it when its definition differs; returns its id. ``http`` carries
    the devops credentials."""
    existing = await _find(http, connection_id, definition["name"])
    if existing is not None:
        actual_id = str(existing["id"])
        if _differs(existing, definition):
            r = await http.put(f"/api/2/connections/{quote(actual_id, safe='')}", json=definition)
            if not r.is_success:
                raise ConnectionSetupError(
                    f"cannot update connection {actual_id}: {r.status_code} {r.text[:300]}"
                )
        return actual_id
    r = await http.put(f"/api/2/connections/{quote(connection_id, safe='')}", json=definition)
    if r.is_success:
        return connection_id
    if r.status_code != 404:
        raise ConnectionSetupError(
            f"cannot create connection {connection_id}: {r.status_code} {r.text[:300]}"
        )
    r = await http.post("/api/2/connections", json=definition)
    if r.status_code != 201:
        raise ConnectionSetupError(f"cannot create connection: {r.status_code} {r.text[:300]}")
    return str(r.json()["id"])


def _is_open(status: dict[str, Any]) -> bool:
    if status.get("liveStatus") != "open":
        return False
    sources = status.get("sourceStatus") or []
    return all(s.get("status") == "open" for s in sources if isinstance(s, dict))


async def wait_until_open(http: httpx.AsyncClient, connection_id: str, within: float) -> None:
    """Polls ``/status`` until the connection and its sources are open (a consumer group join takes seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: Any = None
    while True:
        r = await http.get(f"/api/2/connections/{quote(connection_id, safe='')}/status")
        if r.status_code == 200:
            last = r.json()
            if _is_open(last):
                return
        else:
            last = f"{r.status_code} {r.text[:300]}"
        if loop.time() >= deadline:
            raise ConnectionSetupError(
                f"connection {connection_id} did not open within {within:.0f} s: {last}"
            )
        await asyncio.sleep(0.2)
