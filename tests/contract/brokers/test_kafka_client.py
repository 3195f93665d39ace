"""The Kafka client adapter against a real Kafka-compatible broker (Tansu, tests/brokers/kafka.py), following
Ditto's ``connectivity-protocol-bindings-kafka2``: inbound headers and payloads, commit-after-handler (qos 1)
and commit-before-handler (qos 0), offset reset, target addresses, message expiry and ``test()``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ditto_compat.connectivity.clients.base import ConnectionFailed
from ditto_compat.connectivity.clients.kafka import (
    KafkaClient,
    KafkaConfigurationInvalid,
    KafkaPublishFailed,
    KafkaPublishTarget,
    KafkaTuning,
    parse_settings,
    parse_target_address,
)
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Source, Target
from tests import services
from tests.brokers.kafka import start_tansu

# Short timeouts: a Tansu group join takes about half the session timeout, and a new member of a group whose
# previous member left waits for that member's session to expire.
TUNING = KafkaTuning(
    session_timeout_ms=3000,
    rebalance_timeout_ms=3000,
    heartbeat_interval_ms=1000,
    request_timeout_ms=5000,
    retry_backoff_initial_s=0.05,
    retry_backoff_max_s=0.2,
    health_interval_s=0.5,
)
DEADLINE_S = 30.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def kafka_connection(
    bootstrap: str,
    *,
    sources: Sequence[Source] = (),
    targets: Sequence[Target] = (),
    config: dict[str, str] | None = None,
    uri: str | None = None,
) -> Connection:
    return Connection(
        id=unique("kafka-connection"),
        connection_type="kafka",
        connection_status="open",
        uri=uri or f"tcp://{bootstrap}",
        sources=tuple(sources),
        targets=tuple(targets),
        specific_config={"bootstrapServers": bootstrap, **(config or {})},
    )


def source(topic: str, qos: int | None = 1) -> Source:
    return Source(addresses=(topic,), authorization_context=("integration:kafka",), qos=qos)


def target(address: str) -> Target:
    return Target(address=address, topics=(), authorization_context=("integration:kafka",))


async def create_topic(bootstrap: str, partitions: int = 1) -> str:
    topic = unique("topic")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    return topic


async def produce(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Each record is sent and acknowledged on its own (Tansu's offsets are exact for single sends)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def committed_offset(bootstrap: str, group: str, topic: str, partition: int = 0) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, partition))
        return offset
    finally:
        await consumer.stop()


async def wait_until(condition: Callable[[], bool], what: str, within_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_until_async(
    condition: Callable[[], Awaitable[bool]], what: str, within_s: float = DEADLINE_S
) -> None:
    deadline = time.monotonic() + within_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


class Collector:
    """An inbound handler that keeps every batch, and can be told to fail its first calls."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[ExternalMessage]] = []
        self.failures_left = failures
        self.calls = 0

    async def __call__(self, batch: Sequence[ExternalMessage]) -> None:
        self.calls += 1
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RuntimeError("store unavailable")
        self.batches.append(list(batch))

    @property
    def messages(self) -> list[ExternalMessage]:
        return [message for batch in self.batches for message in batch]

    @property
    def texts(self) -> list[str | None]:
        return [message.text for message in self.messages]


# -- configuration (pure) --------------------------------------------------------------------------------


def test_settings_from_uri_and_specific_config() -> None:
    connection = kafka_connection(
        "broker-1:9092, broker-2:9093",
        uri="tcp://alice:s%3Acret@broker-1:9092",
        config={"saslMechanism": "scram-sha-512", "consumerOffsetReset": "earliest", "debugEnabled": "true"},
    )
    settings = parse_settings(connection)
    assert settings.bootstrap_servers == ("broker-1:9092", "broker-2:9093")
    assert settings.group_id == connection.id
    assert settings.offset_reset == "earliest"
    assert settings.debug_enabled is True
    assert settings.security == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s:cret",
    }


def test_defaults_plain_sasl_latest_and_connection_id_group() -> None:
    connection = kafka_connection("h:1", uri="tcp://bob:pw@h:1", config={"groupId": "my-group"})
    settings = parse_settings(connection)
    assert settings.security["sasl_mechanism"] == "PLAIN"
    assert settings.offset_reset == "latest"
    assert settings.group_id == "my-group"
    assert parse_settings(kafka_connection("h:1")).security == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    "config",
    [
        {"bootstrapServers": ""},
        {"bootstrapServers": "no-port"},
        {"saslMechanism": "gssapi"},
        {"consumerOffsetReset": "middle"},
    ],
)
def test_invalid_configuration_is_a_ditto_error(config: dict[str, str]) -> None:
    connection = kafka_connection("h:1", uri="tcp://u:p@h:1", config=config)
    with pytest.raises(KafkaConfigurationInvalid) as error:
        KafkaClient(connection)
    assert error.value.status == 400
    assert error.value.to_json()["error"] == "connectivity:connection.configuration.invalid"


def test_invalid_addresses_are_refused() -> None:
    with pytest.raises(KafkaConfigurationInvalid):
        KafkaClient(kafka_connection("h:1", sources=[source("bad topic")]))
    with pytest.raises(KafkaConfigurationInvalid):
        KafkaClient(kafka_connection("h:1", targets=[target("events#first")]))
    # Placeholders are resolved per message, so such an address is checked only when publishing.
    KafkaClient(kafka_connection("h:1", targets=[target("events/{{ thing:id }}")]))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("events", KafkaPublishTarget("events")),
        ("events/my:thing", KafkaPublishTarget("events", key="my:thing")),
        ("events/a#b", KafkaPublishTarget("events", key="a#b")),
        ("events#3", KafkaPublishTarget("events", partition=3)),
    ],
)
def test_target_address_forms(address: str, expected: KafkaPublishTarget) -> None:
    assert parse_target_address(address) == expected


# -- against the broker ----------------------------------------------------------------------------------


async def test_consumes_a_batch_with_headers_keys_and_payloads(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(
        kafka_bootstrap,
        topic,
        [
            (
                b"org.example:sensor-1",
                b'{"a":1}',
                [("content-type", b"application/json"), ("device_id", b"d1")],
            ),
            (None, b"plain text", []),
            (b"k3", b"\xff\xfe\x00binary", [("x-trace", b"t3")]),
        ],
    )
    collector = Collector()
    client = KafkaClient(
        kafka_connection(
            kafka_bootstrap, sources=[source(topic)], config={"consumerOffsetReset": "earliest"}
        ),
        tuning=TUNING,
    )
    await client.connect(collector)
    try:
        await wait_until(lambda: len(collector.messages) >= 3, "three records")
        assert client.status().state == "open"
    finally:
        await client.close()
    assert client.status().state == "closed"
    first, second, third = collector.messages
    assert first.text == '{"a":1}' and first.payload is None
    assert first.address == topic
    assert first.headers["kafka.topic"] == topic
    assert first.headers["kafka.key"] == "org.example:sensor-1"
    assert first.headers["device_id"] == "d1"
    assert first.content_type == "application/json"
    assert int(first.headers["kafka.timestamp"]) > 0
    assert first.transport == {"kafka.partition": 0, "kafka.offset": 0}
    assert second.text == "plain text" and "kafka.key" not in second.headers
    assert third.text is None and third.payload == b"\xff\xfe\x00binary"
    assert third.headers["x-trace"] == "t3"


async def test_failing_handler_gets_the_records_again_in_order_then_offsets_are_committed(
    kafka_bootstrap: str,
) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(None, f"m{i}".encode(), []) for i in range(10)])
    group = unique("group")
    config = {"groupId": group, "consumerOffsetReset": "earliest"}
    collector = Collector(failures=2)
    client = KafkaClient(
        kafka_connection(kafka_bootstrap, sources=[source(topic)], config=config), tuning=TUNING
    )
    await client.connect(collector)
    try:
        await wait_until(lambda: len(collector.messages) >= 10, "ten records after two failed attempts")

        async def committed_all() -> bool:
            return await committed_offset(kafka_bootstrap, group, topic) == 10

        await wait_until_async(committed_all, "offset 10 committed")
    finally:
        await client.close()
    assert collector.calls >= 3
    # Each record exactly once and in order: the failed batches were not committed and not skipped.
    assert collector.texts == [f"m{i}" for i in range(10)]

    # A new consumer of the same group resumes after the committed offset (earliest would replay otherwise).
    await produce(kafka_bootstrap, topic, [(None, f"n{i}".encode(), []) for i in range(3)])
    resumed = Collector()
    client = KafkaClient(
        kafka_connection(kafka_bootstrap, sources=[source(topic)], config=config), tuning=TUNING
    )
    await client.connect(resumed)
    try:
        await wait_until(lambda: len(resumed.messages) >= 3, "three new records")
    finally:
        await client.close()
    assert resumed.texts == ["n0", "n1", "n2"]


async def test_qos_0_commits_before_the_handler_and_does_not_redeliver(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(None, f"m{i}".encode(), []) for i in range(5)])
    group = unique("group")
    collector = Collector(failures=1)
    config = {"groupId": group, "consumerOffsetReset": "earliest"}
    client = KafkaClient(
        kafka_connection(kafka_bootstrap, sources=[source(topic, qos=0)], config=config), tuning=TUNING
    )
    await client.connect(collector)
    try:
        await wait_until(lambda: collector.calls >= 1, "the first handler call")

        async def committed_all() -> bool:
            return await committed_offset(kafka_bootstrap, group, topic) == 5

        await wait_until_async(committed_all, "offset 5 committed")
        await produce(kafka_bootstrap, topic, [(None, b"after", [])])
        await wait_until(lambda: "after" in collector.texts, "the record sent after the failure")
    finally:
        await client.close()
    # At most once: the batch the handler failed on is gone.
    assert collector.texts == ["after"]


async def test_earliest_replays_the_topic_and_latest_starts_at_its_end(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap)
    await produce(kafka_bootstrap, topic, [(None, f"old{i}".encode(), []) for i in range(3)])

    earliest = Collector()
    client = KafkaClient(
        kafka_connection(
            kafka_bootstrap, sources=[source(topic)], config={"consumerOffsetReset": "earliest"}
        ),
        tuning=TUNING,
    )
    await client.connect(earliest)
    try:
        await wait_until(lambda: len(earliest.messages) >= 3, "the old records")
    finally:
        await client.close()
    assert earliest.texts == ["old0", "old1", "old2"]

    latest = Collector()
    client = KafkaClient(kafka_connection(kafka_bootstrap, sources=[source(topic)]), tuning=TUNING)
    await client.connect(latest)
    try:
        # Until the new group's partitions are assigned, markers sent meanwhile may be skipped as well.
        marker = 0
        deadline = time.monotonic() + DEADLINE_S
        while not latest.messages:
            assert time.monotonic() < deadline, "no marker record arrived"
            await produce(kafka_bootstrap, topic, [(None, f"new{marker}".encode(), [])])
            marker += 1
            await asyncio.sleep(0.2)
    finally:
        await client.close()
    assert latest.messages
    assert all(text is not None and text.startswith("new") for text in latest.texts)


async def test_expired_records_are_dropped_and_reported(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap)
    now_ms = int(time.time() * 1000)
    await produce(
        kafka_bootstrap,
        topic,
        [
            (None, b"expired", [("creation-time", str(now_ms - 60_000).encode()), ("ttl", b"1000")]),
            (None, b"valid", [("creation-time", str(now_ms).encode()), ("ttl", b"600000")]),
            (None, b"no-expiry", []),
        ],
    )
    dropped: list[ExternalMessage] = []
    collector = Collector()
    client = KafkaClient(
        kafka_connection(
            kafka_bootstrap, sources=[source(topic)], config={"consumerOffsetReset": "earliest"}
        ),
        on_expired=dropped.append,
        tuning=TUNING,
    )
    await client.connect(collector)
    try:
        await wait_until(lambda: len(collector.messages) >= 2, "the valid records")
    finally:
        await client.close()
    assert collector.texts == ["valid", "no-expiry"]
    assert [message.text for message in dropped] == ["expired"]
    assert client.expired_count == 1


async def test_publish_to_topic_key_and_partition(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, partitions=3)
    client = KafkaClient(
        kafka_connection(
            kafka_bootstrap, targets=[target(f"{topic}/ignored")], config={"debugEnabled": "true"}
        ),
        tuning=TUNING,
    )
    await client.connect(Collector())
    try:
        keyed = ExternalMessage(
            headers={"content-type": "application/json", "correlation-id": "c-1"},
            text='{"k":1}',
            address=f"{topic}/org.example:thing-1",
        )
        await client.publish(keyed, client.connection.targets[0])
        to_partition = ExternalMessage(text="second", address=f"{topic}#2")
        metadata = await client.publish_with_metadata(to_partition)
        assert metadata["topic"] == topic and metadata["partition"] == 2
        assert metadata["serializedKeySize"] == -1 and metadata["serializedValueSize"] == len(b"second")
        assert metadata["offset"] >= 0
        with pytest.raises(KafkaPublishFailed) as failure:
            await client.publish_with_metadata(ExternalMessage(text="x", address=f"{topic}#7"))
        assert failure.value.retriable is False
        with pytest.raises(KafkaPublishFailed) as failure:
            await client.publish_with_metadata(ExternalMessage(text="x", address=f"{topic}#first"))
        assert failure.value.retriable is False and failure.value.status == 400
    finally:
        await client.close()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records = []
        deadline = time.monotonic() + DEADLINE_S
        while len(records) < 2 and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=200)
            records.extend(record for batch in fetched.values() for record in batch)
    finally:
        await consumer.stop()
    by_value = {record.value: record for record in records}
    assert set(by_value) == {b'{"k":1}', b"second"}
    keyed_record = by_value[b'{"k":1}']
    assert keyed_record.key == b"org.example:thing-1"
    assert dict(keyed_record.headers) == {"content-type": b"application/json", "correlation-id": b"c-1"}
    assert by_value[b"second"].partition == 2 and by_value[b"second"].key is None


async def test_connection_test_reaches_the_broker(kafka_bootstrap: str) -> None:
    await KafkaClient(kafka_connection(kafka_bootstrap), tuning=TUNING).test()


async def test_nobody_listening_fails_test_and_connect() -> None:
    bootstrap = f"{services.LOOPBACK}:{services.free_port()}"
    client = KafkaClient(kafka_connection(bootstrap, sources=[source("t")]), tuning=TUNING)
    with pytest.raises(ConnectionFailed):
        await client.test()
    with pytest.raises(ConnectionFailed):
        await client.connect(Collector())
    status = client.status()
    assert status.state == "failed"
    assert status.detail


async def test_broker_outage_is_reported_and_consumption_resumes_after_it() -> None:
    """A broker of its own, stopped and started again on the same port (memory storage: topics are gone)."""
    try:
        broker = start_tansu()
    except services.ServiceUnavailable as exc:
        services.service_missing(str(exc))
        raise
    bootstrap = f"{services.LOOPBACK}:{broker.port}"
    collector = Collector()
    client = None
    try:
        topic = await create_topic(bootstrap)
        await produce(bootstrap, topic, [(None, b"before", [])])
        client = KafkaClient(
            kafka_connection(bootstrap, sources=[source(topic)], config={"consumerOffsetReset": "earliest"}),
            tuning=TUNING,
        )
        await client.connect(collector)
        await wait_until(lambda: collector.texts == ["before"], "the record sent before the outage")

        broker.stop()
        await wait_until(lambda: client is not None and client.status().state == "failed", "status failed")
        assert "unreachable" in client.status().detail

        broker = start_tansu(port=broker.port)
        await wait_until(lambda: client is not None and client.status().state == "open", "status open again")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()
        await produce(bootstrap, topic, [(None, b"after", [])])
        await wait_until(lambda: "after" in collector.texts, "the record sent after the outage", within_s=60)
    finally:
        if client is not None:
            await client.close()
        broker.stop()
    assert collector.texts[0] == "before" and collector.texts[-1] == "after"


async def test_batches_are_bounded_and_keep_each_partitions_order(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, partitions=3)
    things, total = 50, 2500
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, str(value).encode(), key=f"thing-{value % things}".encode())
            for value in range(total)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    collector = Collector()
    client = KafkaClient(
        kafka_connection(
            kafka_bootstrap, sources=[source(topic)], config={"consumerOffsetReset": "earliest"}
        ),
        tuning=TUNING,
    )
    await client.connect(collector)
    try:
        await wait_until(lambda: len(collector.messages) >= total, f"{total} records")
    finally:
        await client.close()
    assert all(0 < len(batch) <= 1000 for batch in collector.batches)
    values = [int(text) for text in collector.texts if text is not None]
    assert sorted(values) == list(range(total))  # every record exactly once
    per_thing: dict[str, list[int]] = {}
    for message in collector.messages:
        per_thing.setdefault(message.headers["kafka.key"], []).append(int(message.text or "-1"))
    assert all(sequence == sorted(sequence) for sequence in per_thing.values())
