"""SQLite backend specifics: group commit on the writer thread, durability across close and reopen."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from ditto_compat.domain.entity import EntityState
from ditto_compat.persistence.factory import SQLITE_FILENAME, create_store
from ditto_compat.persistence.ports import EntityWrite, RevisionConflict, StoreUnavailable
from ditto_compat.persistence.sqlite import SqliteStore

T0 = "2024-05-01T10:00:00.000Z"


def create_write(entity_id: str, doc: dict[str, object]) -> EntityWrite:
    return EntityWrite(
        collection="things",
        expected_revision=0,
        state=EntityState(entity_id, 1, doc, T0, T0),
        event={"type": "things.events:thingCreated", "thingId": entity_id, "revision": 1},
    )


async def test_many_concurrent_commits_on_distinct_ids_are_durable(sqlite_path: str) -> None:
    ids = [f"org.test:g{i:04d}" for i in range(2000)]
    store = SqliteStore(sqlite_path)
    await store.open()
    await asyncio.gather(*(store.commit([create_write(i, {"n": n})]) for n, i in enumerate(ids)))
    await store.close()

    reopened = SqliteStore(sqlite_path)
    await reopened.open()
    try:
        got = await reopened.get_many("things", ids)
        assert list(got) == ids
        assert all(got[i].doc == {"n": n} for n, i in enumerate(ids))
        assert await reopened.journal("things", ids[-1]) == [
            {"type": "things.events:thingCreated", "thingId": ids[-1], "revision": 1}
        ]
    finally:
        await reopened.close()


async def test_concurrent_commits_share_transactions(sqlite_path: str) -> None:
    """Group commit: callers that queue up together share one transaction."""
    store = SqliteStore(sqlite_path)
    await store.open()
    try:
        ids = [f"org.test:s{i:04d}" for i in range(500)]
        await asyncio.gather(*(store.commit([create_write(i, {})]) for i in ids))
        stats = store.group_commit_stats
    finally:
        await store.close()
    assert stats["commits"] == 500
    assert stats["rounds"] <= 50
    assert stats["largest_round"] > 10


async def test_close_applies_every_queued_commit(sqlite_path: str) -> None:
    store = SqliteStore(sqlite_path)
    await store.open()
    ids = [f"org.test:q{i:03d}" for i in range(200)]
    tasks = [asyncio.create_task(store.commit([create_write(i, {})])) for i in ids]
    await asyncio.sleep(0)  # one scheduling step: every task runs up to its enqueued commit
    await store.close()
    assert [t.result() for t in tasks] == [None] * len(ids)

    reopened = SqliteStore(sqlite_path)
    await reopened.open()
    try:
        assert list(await reopened.get_many("things", ids)) == ids
    finally:
        await reopened.close()


async def test_one_conflict_in_a_round_rolls_back_only_itself(sqlite_path: str) -> None:
    store = SqliteStore(sqlite_path)
    await store.open()
    try:
        await store.commit([create_write("org.test:taken", {"v": 1})])
        ids = [f"org.test:r{i:03d}" for i in range(100)]
        writes = [[create_write(i, {})] for i in ids]
        # Every 10th commit also tries to re-create an existing entity: its own new entity must not appear.
        for n in range(0, len(writes), 10):
            writes[n].append(create_write("org.test:taken", {"v": "lost"}))
        results = await asyncio.gather(*(store.commit(w) for w in writes), return_exceptions=True)
    finally:
        await store.close()

    reopened = SqliteStore(sqlite_path)
    await reopened.open()
    try:
        for n, (entity_id, result) in enumerate(zip(ids, results, strict=True)):
            stored = await reopened.get("things", entity_id)
            if n % 10 == 0:
                assert isinstance(result, RevisionConflict)
                assert stored is None
            else:
                assert result is None
                assert stored is not None
        taken = await reopened.get("things", "org.test:taken")
        assert taken is not None and taken.doc == {"v": 1}
        assert len(await reopened.journal("things", "org.test:taken")) == 1
    finally:
        await reopened.close()


async def test_commit_after_close_is_unavailable_and_reopen_needs_a_new_store(sqlite_path: str) -> None:
    store = SqliteStore(sqlite_path)
    await store.open()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.commit([create_write("org.test:late", {})])
    with pytest.raises(StoreUnavailable):
        await store.open()


async def test_health_reports_the_path(sqlite_path: str) -> None:
    store = SqliteStore(sqlite_path)
    assert (await store.health())["status"] == "DOWN"
    await store.open()
    try:
        health = await store.health()
        assert health == {
            "status": "UP",
            "backend": "sqlite",
            "path": sqlite_path,
            "groupCommit": {
                "rounds": 0,
                "commits": 0,
                "largest_round": 0,
                "checkpoints": 0,
                "wal_frames": 0,
            },
        }
    finally:
        await store.close()


async def test_wal_mode_and_synchronous_setting(sqlite_path: str) -> None:
    store = SqliteStore(sqlite_path, synchronous="full")
    await store.open()
    await store.close()
    conn = sqlite3.connect(sqlite_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()
    with pytest.raises(ValueError):
        SqliteStore(sqlite_path, synchronous="NORMAL; DROP TABLE things")


async def test_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore("/proc/definitely/not/writable/store.sqlite3")
    with pytest.raises(StoreUnavailable):
        await store.open()


async def test_factory_picks_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    data_dir = f"{tmp_path}/nested/data"
    store = create_store(data_dir=data_dir, mongo_uri=None, mongo_database="ditto")
    assert isinstance(store, SqliteStore)
    assert store.path == f"{data_dir}/{SQLITE_FILENAME}"
    await store.open()
    try:
        assert (await store.health())["status"] == "UP"
    finally:
        await store.close()


def third_revision(entity_id: str, doc: dict[str, object]) -> EntityWrite:
    return EntityWrite(
        collection="things",
        expected_revision=2,
        state=EntityState(entity_id, 3, doc, T0, T0),
        event={"revision": 3},
    )


async def test_journal_clustered_by_entity_is_migrated_to_append_order(sqlite_path: str) -> None:
    """A file whose journal is clustered by entity (layout 2) keeps every entry when opened, in revision order
    per entity, and the entity's next revisions append to it."""
    store = SqliteStore(sqlite_path)
    await store.open()
    await store.commit([create_write("org.test:m", {"v": 1})])
    await store.close()
    old = sqlite3.connect(sqlite_path)
    old.execute("DROP TABLE journal")
    old.execute(
        "CREATE TABLE journal (collection TEXT NOT NULL, entity_id TEXT NOT NULL, revision INTEGER NOT NULL, "
        "event TEXT NOT NULL, PRIMARY KEY (collection, entity_id, revision)) WITHOUT ROWID"
    )
    # written out of order on purpose: the clustered table returned them by key, so must the new one
    for revision in (2, 1):
        old.execute(
            "INSERT INTO journal VALUES ('things', 'org.test:m', ?, ?)",
            (revision, f'{{"revision":{revision}}}'),
        )
    old.execute("UPDATE things SET revision = 2")
    old.execute("PRAGMA user_version = 2")
    old.commit()
    old.close()

    reopened = SqliteStore(sqlite_path)
    await reopened.open()
    try:
        assert await reopened.journal("things", "org.test:m") == [{"revision": 1}, {"revision": 2}]
        await reopened.commit([third_revision("org.test:m", {"v": 3})])
        assert await reopened.journal("things", "org.test:m", from_revision=2) == [
            {"revision": 2},
            {"revision": 3},
        ]
        with pytest.raises(RevisionConflict):  # the entity's revisions stay unique
            await reopened.commit([third_revision("org.test:m", {"v": 4})])
    finally:
        await reopened.close()
    check = sqlite3.connect(sqlite_path)
    try:
        (sql,) = check.execute("SELECT sql FROM sqlite_master WHERE name = 'journal'").fetchone()
        assert "WITHOUT ROWID" not in sql.upper()
        assert check.execute("PRAGMA user_version").fetchone()[0] == 3
    finally:
        check.close()


def file_size(path: str) -> int:
    return os.path.getsize(path)


async def test_checkpoints_run_off_the_writer_and_empty_the_wal(sqlite_path: str) -> None:
    """The writer's commits leave the checkpoint to the checkpointer thread: once writes stop, every page of the
    WAL is back in the database file, which grew by them (sqlite_checkpoint)."""
    store = SqliteStore(sqlite_path)
    await store.open()
    try:
        size_before = file_size(sqlite_path)
        for round_ in range(20):
            ids = [f"org.test:c{round_:02d}-{i:03d}" for i in range(100)]
            await asyncio.gather(*(store.commit([create_write(i, {"x": "y" * 200})]) for i in ids))
        async with asyncio.timeout(10):
            while True:
                stats = store.group_commit_stats
                checkpointer = store._checkpointer
                assert checkpointer is not None
                if stats["checkpoints"] > 0 and checkpointer.backlog_frames == 0 and checkpointer.wal_frames:
                    break
                checkpointer.committed()  # a last one, after the final commit
                await asyncio.sleep(0.05)
        assert file_size(sqlite_path) > size_before + 2000 * 200
    finally:
        await store.close()
    reopened = SqliteStore(sqlite_path)
    await reopened.open()
    try:
        assert len(await reopened.get_many("things", [f"org.test:c19-{i:03d}" for i in range(100)])) == 100
    finally:
        await reopened.close()


async def test_one_process_owns_the_file(sqlite_path: str) -> None:
    """A second store (a second server) on an open file is refused; once the owner closes, it opens."""
    owner = SqliteStore(sqlite_path)
    await owner.open()
    second = SqliteStore(sqlite_path)
    try:
        with pytest.raises(StoreUnavailable, match="in use by another"):
            await second.open()
    finally:
        await owner.close()
    await second.open()
    try:
        assert (await second.health())["status"] == "UP"
    finally:
        await second.close()


def policy_write(policy_id: str, expected: int, revision: int, live: bool = True) -> EntityWrite:
    doc = {"policyId": policy_id, "entries": {}} if live else None
    return EntityWrite(
        "policies", expected, EntityState(policy_id, revision, doc, T0, T0), {"revision": revision}
    )


async def test_policy_revisions_come_from_what_the_owner_read_and_wrote(sqlite_path: str) -> None:
    store = SqliteStore(sqlite_path)
    await store.open()
    try:
        await store.commit([policy_write("org.test:p", 0, 1), policy_write("org.test:q", 0, 1)])
        assert await store.revisions("policies", ["org.test:p", "org.test:q", "org.test:none"]) == {
            "org.test:p": 1,
            "org.test:q": 1,
        }
        await store.commit([policy_write("org.test:p", 1, 2)])
        await store.commit([policy_write("org.test:q", 1, 2, live=False)])
        assert await store.revisions("policies", ["org.test:p", "org.test:q"]) == {"org.test:p": 2}
        # nobody else writes the file: what the owner knows is not read again (a change behind its back,
        # which the lock rules out, shows that)
        with sqlite3.connect(sqlite_path) as behind:
            behind.execute("UPDATE policies SET revision = 9 WHERE id = 'org.test:p'")
        assert await store.revisions("policies", ["org.test:p"]) == {"org.test:p": 2}
        with pytest.raises(RevisionConflict):  # the compare-and-set still reads the file
            await store.commit([policy_write("org.test:p", 2, 3)])
    finally:
        await store.close()
