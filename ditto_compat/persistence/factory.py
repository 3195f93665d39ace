"""Choose the storage backend from the settings (DESIGN.md "Storage"): MongoDB when a URI is configured,
otherwise the embedded SQLite file in the data directory."""

from __future__ import annotations

import os
from typing import Final

from ditto_compat.persistence.ports import Store

SQLITE_FILENAME: Final = "ditto-compat.sqlite3"


def create_store(
    *,
    data_dir: str,
    mongo_uri: str | None,
    mongo_database: str,
    sqlite_synchronous: str = "NORMAL",
    journal_retention: int = 0,
) -> Store:
    """An unopened store: the caller awaits ``open()`` before use and ``close()`` at the end."""
    if mongo_uri:
        # Imported here so that the embedded default does not pay for loading the MongoDB driver.
        from ditto_compat.persistence.mongo import MongoStore

        return MongoStore(mongo_uri, mongo_database, journal_retention=journal_retention)
    from ditto_compat.persistence.sqlite import SqliteStore

    return SqliteStore(
        os.path.join(data_dir, SQLITE_FILENAME),
        synchronous=sqlite_synchronous,
        journal_retention=journal_retention,
    )
