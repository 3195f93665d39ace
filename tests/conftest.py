"""Session-wide fixtures shared by every test folder: real services started on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import services

# Broker fixtures (Mosquitto, RabbitMQ, Tansu, a local HTTP endpoint), one module per service.
pytest_plugins = ["tests.brokers.mqtt", "tests.brokers.amqp", "tests.brokers.kafka", "tests.brokers.http"]


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """URI of a SecantusDB (MongoDB wire protocol) started for this test session, with ``retryWrites=false``."""
    yield from services.mongo_uri_fixture()
