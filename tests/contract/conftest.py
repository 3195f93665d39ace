"""Fixtures of the storage contract suite: one ``store`` fixture parametrised over the backends
(``sqlite`` on a fresh file, ``mongo`` on a fresh database of a session-wide SecantusDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ditto_compat.persistence.mongo import MongoStore
from ditto_compat.persistence.ports import Store
from ditto_compat.persistence.sqlite import SqliteStore
from tests import services


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    # A directory that does not exist yet: creating it is the store's job.
    return str(tmp_path / "data" / "store.sqlite3")


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
async def store(request: pytest.FixtureRequest, sqlite_path: str) -> AsyncIterator[Store]:
    """An open, empty store of each backend."""
    if request.param == "sqlite":
        sqlite_store = SqliteStore(sqlite_path)
        await sqlite_store.open()
        try:
            yield sqlite_store
        finally:
            await sqlite_store.close()
        return
    uri: str = request.getfixturevalue("mongo_uri")
    database = services.fresh_database_name()
    mongo_store = MongoStore(uri, database)
    await mongo_store.open()
    try:
        yield mongo_store
    finally:
        await mongo_store.close()
        await services.drop_mongo_database(uri, database)
