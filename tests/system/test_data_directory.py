"""One server owns a SQLite data directory (``persistence/sqlite_ownership.py``): a second one on it fails to
start and says why, since it would neither see the first one's events nor share its connections; once the owner
is gone, also when it was killed, the directory is free again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live_server import ServerStartError
from tests.system.conftest import ServerFactory


def test_a_second_server_on_the_same_data_directory_does_not_start(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    owner = server_factory()
    with pytest.raises(ServerStartError, match="in use by another ditto-compat process"):
        server_factory()
    with owner.client() as http:
        assert http.get("/health").status_code == 200  # the owner is unaffected
    owner.kill()  # the kernel drops the lock with the process
    successor = server_factory()
    with successor.client() as http:
        assert http.put("/api/2/things/org.test:after", json={}).status_code == 201
