"""Session-wide fixtures shared by every test folder: real services started on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import services


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """URI of a SecantusDB (MongoDB wire protocol) started for this test session, with ``retryWrites=false``."""
    yield from services.mongo_uri_fixture()
