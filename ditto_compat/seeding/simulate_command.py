"""``ditto-compat simulate``: reads the seeded twins back, builds their models, sets up the transport (and
the server-side connection for MQTT and Kafka), and runs the loop until the count, the duration, or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Mapping

import httpx

from ditto_compat.seeding.catalog import Route, SeedError, load_catalog, parse_only
from ditto_compat.seeding.commands import credentials, devops_credentials
from ditto_compat.seeding.connections import (
    KAFKA_CONNECTION_ID,
    MQTT_CONNECTION_ID,
    ConnectionSetupError,
    ensure_connection,
    kafka_connection,
    mqtt_connection,
    wait_until_open,
)
from ditto_compat.seeding.progress import Progress
from ditto_compat.seeding.session import fetch_things, http_client, owner_subject
from ditto_compat.seeding.simulator import Schedule, simulate
from ditto_compat.seeding.telemetry.registry import build_models
from ditto_compat.seeding.transports import HttpTransport, KafkaTransport, MqttTransport, Stats, Transport


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _connect(
    args: argparse.Namespace, environ: Mapping[str, str], url: str, owner: str, stats: Stats
) -> Transport:
    """The broker transport, after its connection exists on the server and is open."""
    devops = devops_credentials(args, environ)
    async with http_client(url, devops[0], devops[1], args.timeout) as admin:
        if args.via == "mqtt":
            connection_id = await ensure_connection(
                admin, MQTT_CONNECTION_ID, mqtt_connection(args.broker, owner)
            )
            mqtt: Transport = MqttTransport(args.broker, stats)
            _say(f"connection {connection_id}: waiting for it to open ...")
            await wait_until_open(admin, connection_id, args.connection_timeout)
            await mqtt.start()
            return mqtt
        kafka = KafkaTransport(args.bootstrap_servers, stats)
        await kafka.ensure_topic()
        connection_id = await ensure_connection(
            admin, KAFKA_CONNECTION_ID, kafka_connection(args.bootstrap_servers, owner)
        )
        _say(f"connection {connection_id}: waiting for it to open (a consumer group join takes seconds) ...")
        await wait_until_open(admin, connection_id, args.connection_timeout)
        await kafka.start()
        return kafka


async def simulate_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    url, user, password = credentials(args, environ)
    stats = Stats()
    async with http_client(url, user, password, args.timeout) as client:
        try:
            domains = load_catalog(args.seeds_dir, only=parse_only(args.only))
            ids = [thing_id for d in domains for thing_id in d.thing_ids]
            things = await fetch_things(client, ids)
            owner = await owner_subject(client, user, args.owner_subject)
        except SeedError as exc:
            _say(f"ditto-compat simulate: {exc}")
            return 2
        except httpx.HTTPError as exc:
            _say(f"ditto-compat simulate: cannot read the twins from {url}: {exc}")
            return 1
        routes: dict[str, Route] = {}
        for domain in domains:
            routes.update(domain.routes)
        models = build_models(things, routes, seed=args.seed)
        if not models:
            _say(
                f"ditto-compat simulate: none of the {len(ids)} seeded twins is on {url}; run `ditto-compat seed`"
            )
            return 1
        if len(things) < len(ids):
            _say(f"{len(ids) - len(things)} seeded twins are missing on {url} (run `ditto-compat seed`)")

        try:
            transport = (
                HttpTransport(client, stats)
                if args.via == "http"
                else await _connect(args, environ, url, owner, stats)
            )
        except (ConnectionSetupError, ConnectionError, httpx.HTTPError) as exc:
            _say(f"ditto-compat simulate: {exc}")
            return 1

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        progress = Progress(sys.stderr, stats, label=f"simulate via {args.via}", twins=len(models))
        schedule = Schedule(rate=args.rate, count=args.count, duration=args.duration, speedup=args.speedup)
        try:
            await simulate(models, transport, schedule, progress, stop=stop)
        finally:
            await transport.close()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
            progress.finish()
    return 1 if stats.errors else 0
