"""``ditto-compat``: the command line. ``serve`` runs the server; every option can also be given as an
environment variable ``DITTO_COMPAT_<NAME>`` (e.g. ``DITTO_COMPAT_MONGO_URI``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from ditto_compat.cli_arguments import non_negative_int, positive_int
from ditto_compat.domain.policy_announcements import parse_duration
from ditto_compat.settings import Settings

ENV_PREFIX = "DITTO_COMPAT_"


def _env(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(ENV_PREFIX + name.upper().replace("-", "_"))


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


def _whole_seconds(text: str) -> int:
    """A Ditto duration (``1s``, ``30s``, ``1h``, ``1d``) of whole seconds, in seconds."""
    duration = parse_duration(text)
    seconds = duration.total_seconds() if duration is not None else 0.0
    if seconds < 1 or not seconds.is_integer():
        raise argparse.ArgumentTypeError(f"must be whole seconds like 1s, 30s, 1h or 1d, not {text!r}")
    return int(seconds)


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ditto-compat", description="An Eclipse Ditto compatible twin server."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    # the client-side commands live in their own packages; their modules import their libraries lazily
    from ditto_compat.client.commands import register as register_management
    from ditto_compat.seeding.commands import register as register_seeding

    register_management(sub)
    register_seeding(sub)
    defaults = Settings()

    def opt(name: str, default: object, help_text: str, kind: Callable[[str], object] = str) -> None:
        env_value = _env(environ, name)
        value = kind(env_value) if env_value is not None else default
        serve.add_argument(
            f"--{name}",
            default=value,
            type=kind,
            help=f"{help_text} (env {ENV_PREFIX}{name.upper().replace('-', '_')}, default {default!r})",
        )

    opt("host", defaults.host, "address to listen on")
    opt("port", defaults.port, "port to listen on", int)
    opt("data-dir", defaults.data_dir, "directory of the embedded SQLite database")
    opt("mongo-uri", defaults.mongo_uri, "MongoDB URI; when given, state lives in MongoDB instead of SQLite")
    opt("mongo-database", defaults.mongo_database, "MongoDB database name")
    opt(
        "htpasswd",
        defaults.htpasswd,
        "htpasswd file of the users (subject nginx:<user>); default user ditto/ditto",
    )
    opt("devops-user", defaults.devops_user, "user of the devops routes")
    opt("devops-password", defaults.devops_password, "password of the devops routes")
    opt("sqlite-synchronous", defaults.sqlite_synchronous, "SQLite PRAGMA synchronous: NORMAL or FULL")
    opt("log-level", defaults.log_level, "log level")
    opt(
        "journal-retention",
        defaults.journal_retention,
        "journal entries kept per Thing/Policy for history (at-historical-*); 0 keeps all",
        non_negative_int,
    )
    opt(
        "event-queue-size",
        defaults.event_queue_size,
        "events waiting per WebSocket or SSE subscriber; one that falls further behind is told and closed",
        positive_int,
    )
    opt(
        "policy-subject-expiry-granularity",
        "1h",
        "a policy subject's expiry is rounded up to a multiple of this duration, e.g. 1s, 30s, 1h, 1d",
        _whole_seconds,
    )
    opt(
        "connection-lease",
        "30s",
        "with several processes on one MongoDB: how long a process holds a connection it runs without renewing; "
        "another takes over within it when the process dies",
        _whole_seconds,
    )
    serve.add_argument(
        "--pre-authenticated",
        action="store_true",
        default=_truthy(_env(environ, "pre-authenticated")),
        help=f"trust the x-ditto-pre-authenticated header of a proxy (env {ENV_PREFIX}PRE_AUTHENTICATED)",
    )
    serve.add_argument(
        "--ws-compression",
        action="store_true",
        default=_truthy(_env(environ, "ws-compression")),
        help="negotiate permessage-deflate on /ws/2 when a client offers it; off by default, as in Ditto "
        f"(env {ENV_PREFIX}WS_COMPRESSION)",
    )
    serve.add_argument(
        "--oauth2-allow-http",
        action="store_true",
        default=_truthy(_env(environ, "oauth2-allow-http")),
        help="let HTTP push connections get OAuth2 tokens from an http:// token endpoint; only https by default, "
        f"as in Ditto (env {ENV_PREFIX}OAUTH2_ALLOW_HTTP)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        mongo_uri=args.mongo_uri or None,
        mongo_database=args.mongo_database,
        htpasswd=args.htpasswd or None,
        pre_authenticated=args.pre_authenticated,
        devops_user=args.devops_user,
        devops_password=args.devops_password,
        sqlite_synchronous=args.sqlite_synchronous.upper(),
        log_level=args.log_level,
        journal_retention=args.journal_retention,
        event_queue_size=args.event_queue_size,
        policy_subject_expiry_granularity_s=args.policy_subject_expiry_granularity,
        ws_compression=args.ws_compression,
        oauth2_allow_http=args.oauth2_allow_http,
        connection_lease_s=float(args.connection_lease),
    )


def serve(settings: Settings) -> None:
    import uvicorn

    from ditto_compat.api.app import create_app
    from ditto_compat.gc_tuning import tune_for_server

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(settings)
    tune_for_server()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
        ws_per_message_deflate=settings.ws_compression,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(os.environ).parse_args(argv)
    if args.command == "serve":
        serve(settings_from_args(args))
        return 0
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
