"""``ditto-compat seed`` and ``ditto-compat simulate``: registered on the CLI's sub-command parser.

Both talk to any Ditto-compatible server over HTTP with basic auth. Defaults come from the environment
(``DITTO_URL``, ``DITTO_USER``, ``DITTO_PASSWORD``, ``DITTO_DEVOPS_USER``, ``DITTO_DEVOPS_PASSWORD``), as for
the management commands, then from a local ditto-compat's defaults.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from ditto_compat.cli_arguments import positive_float, positive_int
from ditto_compat.seeding.catalog import DEFAULT_VIEWER, SEEDS_DIR_ENV

DEFAULT_URL = "http://127.0.0.1:8080"


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"base URL of the Ditto API (env DITTO_URL, default {DEFAULT_URL})")
    parser.add_argument("--user", help="user (env DITTO_USER, default ditto)")
    parser.add_argument("--password", help="password (env DITTO_PASSWORD, default ditto)")
    parser.add_argument(
        "--timeout", type=positive_float, default=30.0, help="seconds per request (default 30)"
    )
    parser.add_argument(
        "--seeds-dir", type=Path, help=f"directory of the seed files (env {SEEDS_DIR_ENV}, default: seeds/)"
    )
    parser.add_argument(
        "--only", help="only these domains (or namespaces), comma-separated, e.g. sensors,vehicles"
    )
    parser.add_argument(
        "--owner-subject",
        help="subject owning the seeded twins (default: the user's own subject, nginx:<user>)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``seed`` and ``simulate``; each sets ``handler`` (args -> exit code) as its default."""
    seed = sub.add_parser(
        "seed",
        help="load the example twins and their policies (seeds/) into a server",
        description="Loads the example twins of seeds/ and one policy per domain, idempotently: missing ones "
        "are created, existing ones are left alone when equal and brought up to date otherwise (attributes, "
        "definitions, policy; live feature values are kept unless --reset).",
    )
    _connection_arguments(seed)
    seed.add_argument(
        "--viewer-subject",
        default=DEFAULT_VIEWER,
        help=f"read-only example subject (default {DEFAULT_VIEWER})",
    )
    seed.add_argument("--reset", action="store_true", help="also reset feature properties to the seed values")
    seed.add_argument("--concurrency", type=positive_int, default=16, help="requests at a time (default 16)")
    seed.add_argument(
        "--wait",
        type=positive_float,
        metavar="SECONDS",
        help="wait up to SECONDS for the server's /health first",
    )
    seed.set_defaults(handler=run_seed)

    simulate = sub.add_parser(
        "simulate",
        help="send realistic telemetry for the seeded twins over HTTP, MQTT or Kafka",
        description="Drives the seeded twins with realistic telemetry. Over MQTT or Kafka it publishes Ditto "
        "Protocol merge commands and first creates the matching connection (simulator-mqtt / simulator-kafka) "
        "with the devops credentials.",
    )
    _connection_arguments(simulate)
    simulate.add_argument(
        "--via", choices=("http", "mqtt", "kafka"), default="http", help="transport (default http)"
    )
    simulate.add_argument(
        "--rate", type=positive_float, default=10.0, help="messages per second (default 10)"
    )
    limit = simulate.add_mutually_exclusive_group()
    limit.add_argument("--duration", type=positive_float, metavar="SECONDS", help="stop after SECONDS")
    limit.add_argument("--count", type=positive_int, help="stop after this many messages")
    simulate.add_argument(
        "--broker", default="tcp://127.0.0.1:1883", help="MQTT broker, as the server reaches it (and we do)"
    )
    simulate.add_argument(
        "--bootstrap-servers", default="127.0.0.1:9092", help="Kafka bootstrap servers, comma-separated"
    )
    simulate.add_argument(
        "--devops-user", help="devops user for the connection (env DITTO_DEVOPS_USER, default devops)"
    )
    simulate.add_argument(
        "--devops-password", help="devops password (env DITTO_DEVOPS_PASSWORD, default foobar)"
    )
    simulate.add_argument(
        "--speedup", type=positive_float, default=1.0, help="simulated seconds per real second (default 1)"
    )
    simulate.add_argument("--seed", type=int, help="random seed, for a reproducible run")
    simulate.add_argument(
        "--connection-timeout",
        type=positive_float,
        default=60.0,
        help="seconds to wait for the connection to open (default 60)",
    )
    simulate.set_defaults(handler=run_simulate)


def credentials(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str, str]:
    """URL, user and password: options first, then the environment, then a local ditto-compat's defaults."""
    url = (args.url or environ.get("DITTO_URL") or DEFAULT_URL).rstrip("/")
    user = args.user or environ.get("DITTO_USER") or "ditto"
    password = args.password or environ.get("DITTO_PASSWORD") or "ditto"
    return url, user, password


def devops_credentials(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str]:
    user = args.devops_user or environ.get("DITTO_DEVOPS_USER") or "devops"
    password = args.devops_password or environ.get("DITTO_DEVOPS_PASSWORD") or "foobar"
    return user, password


def run_seed(args: argparse.Namespace) -> int:
    import asyncio

    from ditto_compat.seeding.seed_command import seed_main

    return asyncio.run(seed_main(args, os.environ))


def run_simulate(args: argparse.Namespace) -> int:
    import asyncio

    from ditto_compat.seeding.simulate_command import simulate_main

    return asyncio.run(simulate_main(args, os.environ))
