"""Apache Kafka client adapter on aiokafka (Ditto doc ``connectivity-protocol-bindings-kafka2``).

Configuration (``specificConfig``): ``bootstrapServers`` (required, comma separated), ``groupId`` (default: the
connection id), ``saslMechanism`` (``plain``, ``scram-sha-256``, ``scram-sha-512``; ``plain`` when the URI has
credentials and no mechanism is given), ``consumerOffsetReset`` (``earliest`` | ``latest``; absent: ``latest``
for a new consumer group) and ``debugEnabled``. The URI ``tcp://user:password@host:port`` (or ``ssl://``)
gives the SASL credentials and whether TLS is used.

Sources: every address is a topic; each source runs ``consumerCount`` consumers of the connection's group.
Records are fetched in batches (up to :attr:`KafkaTuning.max_batch_records`, in partition order) and one batch
goes to one handler call. Inbound headers are the record headers (UTF-8) plus ``kafka.topic``, ``kafka.key``
and ``kafka.timestamp``; the payload is text when it decodes as UTF-8, bytes otherwise (neither for a record
without value); ``transport`` holds ``kafka.partition`` and ``kafka.offset``.

- ``qos`` 0 or absent (Ditto: at most once): the batch's offsets are committed before the handler runs; a
  failing handler loses the batch.
- ``qos`` 1 (at least once): offsets are committed only after the handler returned for the batch. When the
  handler raises, nothing is committed: the consumer seeks back to the first offset of the batch on each
  partition and retries after a backoff, so nothing acknowledged is lost and nothing is skipped.

Records whose ``creation-time`` (epoch ms) plus ``ttl`` (ms) headers lie in the past are dropped before the
handler sees them (they count as consumed, so their offsets are committed). Each dropped record is reported to
the ``on_expired`` callback as its :class:`ExternalMessage` (the caller logs and counts it) and counted in
:attr:`KafkaClient.expired_count`.

Targets: the resolved address is ``topic``, ``topic/key`` or ``topic#partition`` (split as Ditto does: the
first ``/`` makes a key, else a ``#`` a partition). Message headers become record headers. Publishing awaits the
broker's acknowledgement (``acks=all``) on one producer per connection; :meth:`KafkaClient.publish_with_metadata`
also returns Ditto's ``RecordMetadata`` JSON for ``debugEnabled`` acknowledgements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import CommitFailedError, KafkaError

from ditto_compat.connectivity.clients.base import (
    ClientState,
    ClientStatus,
    ConnectionFailed,
    InboundHandler,
)
from ditto_compat.connectivity.clients.errors import PublishFailed
from ditto_compat.connectivity.clients.tls import TlsSettingsInvalid, tls_context
from ditto_compat.connectivity.errors import ConnectionConfigurationInvalid
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.model import Connection, Source, Target

log = logging.getLogger(__name__)

# Ditto's legal topic characters (connectivity-protocol-bindings-kafka2, "Source configuration").
_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
_SASL_MECHANISMS = {"plain": "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"}
_OFFSET_RESETS = ("earliest", "latest")

ExpiredCallback = Callable[[ExternalMessage], None]


class KafkaConfigurationInvalid(ConnectionConfigurationInvalid):
    default_message = "The Kafka connection configuration is invalid."
    default_description = "Check the connection's uri, specificConfig, source and target addresses."


class KafkaPublishFailed(PublishFailed):
    """The broker did not accept a record. ``retriable`` follows Ditto's acknowledgement status: 5xx when a
    retry is feasible (broker unavailable, timeout), 4xx when it is not (unknown partition, record too large)."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable

    @property
    def status(self) -> int:
        return 503 if self.retriable else 400


@dataclass(frozen=True, slots=True)
class KafkaTuning:
    """Client settings that Ditto keeps in ``connectivity.conf`` rather than in the connection."""

    max_batch_records: int = 1000
    # getmany long-poll: also bounds how long close() waits for an idle consumer loop.
    fetch_timeout_ms: int = 200
    # A group join waits up to about half the session timeout on Tansu, and a member that left is only
    # replaced once its session expired; 6000 is also the smallest session timeout Apache Kafka accepts
    # by default (group.min.session.timeout.ms).
    session_timeout_ms: int = 6000
    rebalance_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1500
    request_timeout_ms: int = 15000
    linger_ms: int = 2
    retry_backoff_initial_s: float = 0.1
    retry_backoff_max_s: float = 5.0
    health_interval_s: float = 2.0
    close_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """What the connection definition says about how to reach the brokers."""

    bootstrap_servers: tuple[str, ...]
    group_id: str
    offset_reset: Literal["earliest", "latest"]
    debug_enabled: bool
    security: Mapping[str, Any]  # aiokafka keyword arguments: security_protocol, sasl_*, ssl_context


@dataclass(frozen=True, slots=True)
class KafkaPublishTarget:
    topic: str
    key: str | None = None
    partition: int | None = None


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def _security(connection: Connection) -> dict[str, Any]:
    uri = urlsplit(connection.uri)
    scheme = uri.scheme.lower()
    if scheme not in ("tcp", "ssl"):
        raise KafkaConfigurationInvalid(
            f"The URI scheme '{uri.scheme}' is not supported for Kafka connections.",
            "Use 'tcp://user:password@host:port' or 'ssl://user:password@host:port'.",
        )
    security: dict[str, Any] = {}
    if scheme == "ssl":
        try:
            security["ssl_context"] = tls_context(connection)
        except TlsSettingsInvalid as error:
            raise KafkaConfigurationInvalid(str(error)) from None
    mechanism_name = connection.specific_config.get("saslMechanism")
    if mechanism_name is not None and mechanism_name.strip().lower() not in _SASL_MECHANISMS:
        raise KafkaConfigurationInvalid(
            f"The saslMechanism '{mechanism_name}' is not supported.",
            f"Use one of: {', '.join(_SASL_MECHANISMS)}.",
        )
    if uri.username:
        # Ditto's default mechanism when the URI carries credentials but saslMechanism is absent.
        mechanism = _SASL_MECHANISMS[(mechanism_name or "plain").strip().lower()]
        security["security_protocol"] = "SASL_SSL" if scheme == "ssl" else "SASL_PLAINTEXT"
        security["sasl_mechanism"] = mechanism
        security["sasl_plain_username"] = unquote(uri.username)
        security["sasl_plain_password"] = unquote(uri.password or "")
    else:
        security["security_protocol"] = "SSL" if scheme == "ssl" else "PLAINTEXT"
    return security


def parse_settings(connection: Connection) -> KafkaSettings:
    """The connection's Kafka settings; :class:`KafkaConfigurationInvalid` names what is wrong."""
    config = connection.specific_config
    raw_servers = config.get("bootstrapServers", "")
    servers = tuple(server.strip() for server in raw_servers.split(",") if server.strip())
    if not servers:
        raise KafkaConfigurationInvalid(
            "The specificConfig 'bootstrapServers' is missing or empty.",
            "Set it to a comma separated list of 'host:port', e.g. 'localhost:9092'.",
        )
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise KafkaConfigurationInvalid(
                f"The bootstrap server '{server}' is not of the form 'host:port'.",
            )
    reset = config.get("consumerOffsetReset", "latest").strip().lower()
    if reset not in _OFFSET_RESETS:
        raise KafkaConfigurationInvalid(
            f"The specificConfig 'consumerOffsetReset' has the invalid value '{reset}'.",
            "Use 'earliest' or 'latest'.",
        )
    offset_reset: Literal["earliest", "latest"] = "earliest" if reset == "earliest" else "latest"
    group_id = config.get("groupId", "").strip() or connection.id
    return KafkaSettings(
        servers, group_id, offset_reset, _flag(config.get("debugEnabled")), _security(connection)
    )


def validate_topic(topic: str) -> None:
    if not _TOPIC.fullmatch(topic):
        raise KafkaConfigurationInvalid(
            f"The Kafka topic '{topic}' is invalid.",
            "Topics may contain only the characters [a-zA-Z0-9._-].",
        )


def parse_target_address(address: str) -> KafkaPublishTarget:
    """``topic``, ``topic/key`` or ``topic#partition`` (a key takes precedence, as in Ditto)."""
    if "/" in address:
        topic, key = address.split("/", 1)
        validate_topic(topic)
        return KafkaPublishTarget(topic, key=key)
    if "#" in address:
        topic, partition = address.split("#", 1)
        validate_topic(topic)
        if not partition.isdigit():
            raise KafkaConfigurationInvalid(
                f"The partition in the target address '{address}' is not a number.",
                "Use 'topic#partition' with a partition number, e.g. 'events#0'.",
            )
        return KafkaPublishTarget(topic, partition=int(partition))
    validate_topic(address)
    return KafkaPublishTarget(address)


def validate_connection(connection: Connection) -> KafkaSettings:
    """Check a Kafka connection definition before it is stored or opened."""
    settings = parse_settings(connection)
    for source in connection.sources:
        for address in source.addresses:
            validate_topic(address)
        if source.qos not in (None, 0, 1):
            raise KafkaConfigurationInvalid(f"The Kafka source qos {source.qos} is invalid.", "Use 0 or 1.")
    for target in connection.targets:
        if "{{" not in target.address:  # addresses with placeholders are checked once resolved
            parse_target_address(target.address)
    return settings


# -- inbound ---------------------------------------------------------------------------------------------


def _is_expired(creation_time: str | None, ttl: str | None, now_ms: int) -> bool:
    if creation_time is None or ttl is None:
        return False
    try:
        return int(creation_time) + int(ttl) < now_ms
    except ValueError:
        return False  # Ditto keeps messages whose expiry headers cannot be read


def record_to_message(record: Any, source_index: int) -> ExternalMessage:
    """One consumed record as Ditto's external message (headers, text or bytes payload, topic address)."""
    headers: dict[str, str] = {}
    for name, value in record.headers:
        headers[name] = value.decode("utf-8", "replace") if value is not None else ""
    headers["kafka.topic"] = record.topic
    if record.key is not None:
        headers["kafka.key"] = record.key.decode("utf-8", "replace")
    headers["kafka.timestamp"] = str(record.timestamp)
    text: str | None = None
    payload: bytes | None = None
    if record.value is not None:
        try:
            text = record.value.decode("utf-8")
        except UnicodeDecodeError:
            payload = record.value
    return ExternalMessage(
        headers=headers,
        text=text,
        payload=payload,
        address=record.topic,
        source_index=source_index,
        transport={"kafka.partition": record.partition, "kafka.offset": record.offset},
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Backoff:
    def __init__(self, tuning: KafkaTuning) -> None:
        self._initial = tuning.retry_backoff_initial_s
        self._max = tuning.retry_backoff_max_s
        self._next = self._initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._max, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self._initial


class KafkaClient:
    """The :class:`~ditto_compat.connectivity.clients.base.ClientAdapter` for ``connectionType: kafka``."""

    def __init__(
        self,
        connection: Connection,
        *,
        on_expired: ExpiredCallback | None = None,
        tuning: KafkaTuning | None = None,
    ) -> None:
        self.connection = connection
        self.settings = validate_connection(connection)
        self.tuning = tuning or KafkaTuning()
        self.on_expired = on_expired
        self.expired_count = 0
        self._producer: Any = None
        self._consumers: list[_SourceConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._status = ClientStatus("closed", "", _now_iso())

    @property
    def debug_enabled(self) -> bool:
        return self.settings.debug_enabled

    # -- status ------------------------------------------------------------------------------------------

    def status(self) -> ClientStatus:
        return self._status

    def _set_status(self, state: ClientState, detail: str) -> None:
        if state != self._status.state:
            self._status = ClientStatus(state, detail, _now_iso())
        elif detail != self._status.detail:
            self._status = ClientStatus(state, detail, self._status.in_state_since)

    def report_failure(self, detail: str) -> None:
        if not self._stopping.is_set():
            self._set_status("failed", detail)

    def report_ok(self) -> None:
        # A reachable broker is not enough while a consumer keeps failing (e.g. refused group membership).
        if any(consumer.failing for consumer in self._consumers):
            return
        if not self._stopping.is_set() and self._status.state != "open":
            self._set_status("open", f"Connected to {','.join(self.settings.bootstrap_servers)}.")

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _common_kwargs(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": list(self.settings.bootstrap_servers),
            "client_id": f"ditto-compat-{self.connection.id}",
            "request_timeout_ms": self.tuning.request_timeout_ms,
            **self.settings.security,
        }

    def _new_producer(self) -> Any:
        return AIOKafkaProducer(
            acks="all",
            # The idempotent producer fails against Tansu, and at-least-once publishing needs no idempotence.
            enable_idempotence=False,
            linger_ms=self.tuning.linger_ms,
            **self._common_kwargs(),
        )

    def new_consumer(self, topics: Sequence[str]) -> Any:
        """A consumer (not started yet) of the connection's group that commits only when told to."""
        return AIOKafkaConsumer(
            *topics,
            group_id=self.settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.settings.offset_reset,
            session_timeout_ms=self.tuning.session_timeout_ms,
            rebalance_timeout_ms=self.tuning.rebalance_timeout_ms,
            heartbeat_interval_ms=self.tuning.heartbeat_interval_ms,
            max_poll_interval_ms=max(300_000, self.tuning.rebalance_timeout_ms),
            **self._common_kwargs(),
        )

    async def connect(self, handler: InboundHandler) -> None:
        self._stopping.clear()
        self._set_status("connecting", f"Connecting to {','.join(self.settings.bootstrap_servers)}.")
        producer = self._new_producer()
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await _stop_quietly(producer)
            self._set_status("failed", f"Cannot connect to the Kafka brokers: {exc}")
            raise ConnectionFailed(f"Cannot connect to the Kafka brokers: {exc}") from exc
        self._producer = producer
        self._consumers = [
            _SourceConsumer(self, source, handler)
            for source in self.connection.sources
            for _ in range(max(1, source.consumer_count))
        ]
        # Started together: a start includes the group join, which takes seconds on some brokers (Tansu).
        results = await asyncio.gather(
            *(consumer.start() for consumer in self._consumers), return_exceptions=True
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            await self._shutdown()
            self._set_status("failed", f"Cannot start consuming: {failures[0]}")
            if not isinstance(failures[0], KafkaError | OSError):
                raise failures[0]
            raise ConnectionFailed(f"Cannot start consuming: {failures[0]}") from failures[0]
        self._tasks = [asyncio.create_task(consumer.run()) for consumer in self._consumers]
        self._tasks.append(asyncio.create_task(self._watch_health()))
        self.report_ok()

    async def test(self) -> None:
        client = AIOKafkaClient(**self._common_kwargs())
        try:
            await client.bootstrap()
            await client.fetch_all_metadata()
        except (KafkaError, OSError) as exc:
            raise ConnectionFailed(f"Cannot connect to the Kafka brokers: {exc}") from exc
        finally:
            await client.close()

    async def close(self) -> None:
        self._stopping.set()
        await self._shutdown()
        self._set_status("closed", "Closed.")

    async def _shutdown(self) -> None:
        tasks, self._tasks = self._tasks, []
        if tasks:
            # Consumer loops finish their current batch (its commit included) and leave on the stop flag.
            _done, pending = await asyncio.wait(tasks, timeout=self.tuning.close_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer)

    async def _watch_health(self) -> None:
        """The consumers reconnect on their own inside aiokafka; this probe is what makes an outage (and the
        recovery) visible in :meth:`status`."""
        while not await self.stopped_within(self.tuning.health_interval_s):
            producer = self._producer
            if producer is None:
                return
            try:
                await asyncio.wait_for(
                    producer.client.fetch_all_metadata(), self.tuning.request_timeout_ms / 1000
                )
            except (KafkaError, OSError, TimeoutError) as exc:
                self.report_failure(f"Kafka brokers unreachable, retrying: {exc or type(exc).__name__}")
            else:
                self.report_ok()

    async def stopped_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for close(); True when closing (backoffs end early on close)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def drop_expired(self, message: ExternalMessage) -> None:
        self.expired_count += 1
        if self.on_expired is not None:
            try:
                self.on_expired(message)
            except Exception:
                log.exception("expiry callback of connection %s failed", self.connection.id)

    # -- outbound ----------------------------------------------------------------------------------------

    async def publish(self, message: ExternalMessage, target: Target) -> None:
        await self.publish_with_metadata(message)

    async def publish_with_metadata(self, message: ExternalMessage) -> dict[str, Any]:
        """Send to ``message.address`` and return Ditto's ``RecordMetadata`` JSON once the broker acked it.
        Raises :class:`KafkaPublishFailed` (not retriable for a bad address or partition)."""
        producer = self._producer
        if producer is None:
            raise KafkaPublishFailed("The Kafka connection is not open.", retriable=True)
        try:
            destination = parse_target_address(message.address)
        except KafkaConfigurationInvalid as exc:
            raise KafkaPublishFailed(exc.message, retriable=False) from exc
        key = destination.key.encode("utf-8") if destination.key is not None else None
        value = message.bytes_payload
        headers = [(name, text.encode("utf-8")) for name, text in message.headers.items()]
        try:
            metadata = await producer.send_and_wait(
                destination.topic, value, key=key, partition=destination.partition, headers=headers
            )
        except KafkaError as exc:
            if exc.retriable:
                self.report_failure(f"Publishing to '{destination.topic}' failed, retrying: {exc}")
            raise KafkaPublishFailed(
                f"Publishing to '{message.address}' failed: {exc}", retriable=bool(exc.retriable)
            ) from exc
        except AssertionError as exc:
            # aiokafka asserts that an explicit partition exists in the topic's metadata.
            raise KafkaPublishFailed(
                f"Publishing to '{message.address}' failed: the partition does not exist.", retriable=False
            ) from exc
        result: dict[str, Any] = {
            "serializedKeySize": len(key) if key is not None else -1,
            "serializedValueSize": len(value) if value is not None else -1,
            "topic": metadata.topic,
            "partition": metadata.partition,
        }
        if metadata.timestamp is not None and metadata.timestamp >= 0:
            result["timestamp"] = metadata.timestamp
        if metadata.offset is not None and metadata.offset >= 0:
            result["offset"] = metadata.offset
        return result


async def _stop_quietly(component: Any) -> None:
    try:
        await component.stop()
    except Exception:
        log.exception("stopping a Kafka client failed")


class _SourceConsumer:
    """One consumer of one source: fetch a batch, hand it over, commit per the source's qos."""

    def __init__(self, client: KafkaClient, source: Source, handler: InboundHandler) -> None:
        self.client = client
        self.source = source
        self.handler = handler
        self.at_least_once = source.qos == 1
        self.consumer: Any = None
        self.failing = False
        self._backoff = _Backoff(client.tuning)
        # Offsets of handled batches whose commit failed for a transient reason: sent with the next commit.
        self._pending: dict[Any, int] = {}

    async def start(self) -> None:
        consumer = self.client.new_consumer(self.source.addresses)
        try:
            await consumer.start()
        except BaseException:
            await _stop_quietly(consumer)
            raise
        self.consumer = consumer

    async def stop(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await _stop_quietly(consumer)

    async def _restart(self) -> None:
        """A fresh consumer after an error aiokafka does not recover from by itself, retried with backoff."""
        await self.stop()
        while not self.client.stopping:
            try:
                await self.start()
                return
            except (KafkaError, OSError) as exc:
                self.failing = True
                self.client.report_failure(
                    f"Cannot restart the consumer of source {self.source.index}: {exc}"
                )
                await self.client.stopped_within(self._backoff.next())

    async def run(self) -> None:
        client = self.client
        tuning = client.tuning
        while not client.stopping:
            if self.consumer is None:
                await self._restart()
                continue
            try:
                batches = await self.consumer.getmany(
                    timeout_ms=tuning.fetch_timeout_ms, max_records=tuning.max_batch_records
                )
            except Exception as exc:
                log.warning("Kafka consumer of connection %s failed: %s", client.connection.id, exc)
                self.failing = True
                client.report_failure(f"Consuming source {self.source.index} failed, reconnecting: {exc}")
                await client.stopped_within(self._backoff.next())
                await self.stop()
                continue
            if self.failing:
                self.failing = False
                client.report_ok()
            if not batches:
                continue
            await self._handle(batches)

    async def _handle(self, batches: Mapping[Any, Sequence[Any]]) -> None:
        client = self.client
        source_index = self.source.index
        now_ms = int(time.time() * 1000)
        messages: list[ExternalMessage] = []
        first_offsets: dict[Any, int] = {}
        next_offsets: dict[Any, int] = {}
        for tp, records in batches.items():
            if not records:
                continue
            first_offsets[tp] = records[0].offset
            next_offsets[tp] = records[-1].offset + 1
            for record in records:
                message = record_to_message(record, source_index)
                headers = message.headers
                if ("ttl" in headers or "creation-time" in headers) and _is_expired(
                    headers.get("creation-time"), headers.get("ttl"), now_ms
                ):
                    client.drop_expired(message)
                else:
                    messages.append(message)
        if not self.at_least_once:
            await self._commit(next_offsets)
            if messages:
                try:
                    await self.handler(messages)
                except Exception:
                    # At most once: the offsets are committed, the batch is not retried.
                    log.exception(
                        "handler of connection %s failed (qos 0: not retried)", client.connection.id
                    )
            return
        if messages:
            try:
                await self.handler(messages)
            except Exception as exc:
                log.warning(
                    "handler of connection %s failed, redelivering %d messages: %s",
                    client.connection.id,
                    len(messages),
                    exc,
                )
                self._rewind(first_offsets)
                await client.stopped_within(self._backoff.next())
                return
        self._backoff.reset()
        await self._commit(next_offsets)

    def _rewind(self, first_offsets: Mapping[Any, int]) -> None:
        for tp, offset in first_offsets.items():
            try:
                self.consumer.seek(tp, offset)
            except Exception:
                # Partition revoked meanwhile: its new owner resumes from the committed offset.
                log.debug("cannot seek %s back to %d", tp, offset)

    async def _commit(self, offsets: Mapping[Any, int]) -> None:
        if not offsets:
            return
        self._pending.update(offsets)
        assigned = self.consumer.assignment()
        to_commit = {tp: offset for tp, offset in self._pending.items() if tp in assigned}
        if not to_commit:
            self._pending.clear()
            return
        try:
            await self.consumer.commit(to_commit)
        except CommitFailedError as exc:
            # The group rebalanced: the partitions' new owners resume from the last committed offsets.
            log.info("commit of connection %s lost to a rebalance: %s", self.client.connection.id, exc)
            self._pending.clear()
        except KafkaError as exc:
            log.warning(
                "commit of connection %s failed, retried with the next batch: %s",
                self.client.connection.id,
                exc,
            )
            self.client.report_failure(f"Committing offsets failed, retrying: {exc}")
        else:
            self._pending.clear()
            self.client.report_ok()


__all__ = [
    "ExpiredCallback",
    "KafkaClient",
    "KafkaConfigurationInvalid",
    "KafkaPublishFailed",
    "KafkaPublishTarget",
    "KafkaSettings",
    "KafkaTuning",
    "parse_settings",
    "parse_target_address",
    "record_to_message",
    "validate_connection",
    "validate_topic",
]
