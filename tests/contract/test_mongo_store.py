"""MongoDB backend specifics: key escaping, the stored layout, and a server that goes away."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from ditto_compat.domain.entity import EntityState
from ditto_compat.persistence.factory import create_store
from ditto_compat.persistence.mongo import MongoStore, escape_key, escape_keys, unescape_key, unescape_keys
from ditto_compat.persistence.ports import EntityWrite, StoreUnavailable
from tests import services

T0 = "2024-05-01T10:00:00.000Z"

KEY_ALPHABET = st.sampled_from(["~", "0", "1", "2", "$", ".", "a", "ü", "~0", "~1", "~2"])


@given(st.lists(KEY_ALPHABET, max_size=12).map("".join))
def test_key_escaping_round_trips_and_leaves_no_dot_or_dollar(key: str) -> None:
    escaped = escape_key(key)
    assert "." not in escaped and "$" not in escaped
    assert unescape_key(escaped) == key


def test_escaping_is_ditto_s_scheme() -> None:
    # Ditto's KeyEscapeUtilTest: "$org.eclipse.~ditto" -> "~1org~2eclipse~2~0ditto".
    assert escape_key("$org.eclipse.~ditto") == "~1org~2eclipse~2~0ditto"
    assert escape_key("plain") == "plain"
    nested = {"a.b": [{"$c": {"~": 1}}], "d": "e.f"}
    assert escape_keys(nested) == {"a~2b": [{"~1c": {"~0": 1}}], "d": "e.f"}
    assert unescape_keys(escape_keys(nested)) == nested


@pytest.fixture
async def mongo_store(mongo_uri: str) -> AsyncIterator[MongoStore]:
    database = services.fresh_database_name()
    store = MongoStore(mongo_uri, database)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await services.drop_mongo_database(mongo_uri, database)


@pytest.mark.mongo
async def test_stored_layout_is_queryable(mongo_store: MongoStore, mongo_uri: str) -> None:
    doc = {"thingId": "org.test:a", "attributes": {"loc.city": "Berlin", "$meta": {"n": 1}}}
    await mongo_store.commit(
        [EntityWrite("things", 0, EntityState("org.test:a", 1, doc, T0, T0), {"revision": 1, "x.y": 1})]
    )
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri)
    try:
        db = client[mongo_store.database]
        raw = await db.things.find_one({"doc.attributes.loc~2city": "Berlin"})
        assert raw == {
            "_id": "org.test:a",
            "revision": 1,
            "deleted": False,
            "created": T0,
            "modified": T0,
            "namespace": "org.test",
            "doc": {"thingId": "org.test:a", "attributes": {"loc~2city": "Berlin", "~1meta": {"n": 1}}},
            # search fields: no policy, no features, so no reader
            "policy_id": None,
            "_wf": [],
            "readers": None,
            "uniform": False,
            "readers_v": 0,
        }
        entry = await db.journal.find_one({"c": "things", "i": "org.test:a", "r": 1}, {"_id": 0})
        assert entry == {"c": "things", "i": "org.test:a", "r": 1, "e": {"revision": 1, "x~2y": 1}}
        indexes = {ix["name"] async for ix in await db.things.list_indexes()}
        assert "live_ns" in indexes
    finally:
        await client.close()


@pytest.mark.mongo
async def test_server_gone_is_unavailable_and_down() -> None:
    try:
        server = services.start_secantusdb()
    except services.ServiceUnavailable as exc:
        services.service_missing(str(exc))
        raise
    uri = f"{services.mongo_uri_for(server.port)}&serverSelectionTimeoutMS=300&connectTimeoutMS=300"
    store = MongoStore(uri, "gone")
    try:
        await store.open()
        assert (await store.health())["status"] == "UP"
        server.stop()

        health = await store.health()
        assert health["status"] == "DOWN" and health["reason"]
        assert "uri" not in health
        with pytest.raises(StoreUnavailable):
            await store.get("things", "org.test:a")
        with pytest.raises(StoreUnavailable):
            await store.list_page("things", after=None, limit=1)
        with pytest.raises(StoreUnavailable):
            await store.commit([EntityWrite("things", 0, EntityState("org.test:a", 1, {}, T0, T0), {})])
    finally:
        await store.close()
        server.stop()


async def test_unreachable_server_fails_open() -> None:
    port = services.free_port()
    store = MongoStore(f"mongodb://127.0.0.1:{port}/?retryWrites=false&serverSelectionTimeoutMS=200", "x")
    assert (await store.health())["status"] == "DOWN"
    with pytest.raises(StoreUnavailable):
        await store.open()
    assert (await store.health())["status"] == "DOWN"


def test_factory_picks_mongo_when_a_uri_is_set() -> None:
    store = create_store(data_dir="/nonexistent", mongo_uri="mongodb://127.0.0.1:1/", mongo_database="ditto")
    assert isinstance(store, MongoStore)
    assert store.database == "ditto"
