"""The options every management command shares, and the one place that turns outcomes into exit codes.

Defaults come from the environment when the command runs (``DITTO_URL``, ``DITTO_USER``, ...), not when the
parser is built, so ``--help`` stays the same everywhere and a test can pass its own environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import IO
from urllib.parse import urlsplit

from ditto_compat.cli_arguments import positive_float
from ditto_compat.client.api import DittoApi, DittoApiError, Endpoint, ServerUnreachable
from ditto_compat.client.output import (
    EXIT_DITTO_ERROR,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    JSON_MODE,
    TABLE_MODE,
    Result,
    describe_error,
    emit,
    output_mode,
)
from ditto_compat.client.usage import UsageError

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_USER = ("ditto", "ditto")
DEFAULT_DEVOPS_USER = ("devops", "foobar")
DEFAULT_TIMEOUT_S = 10.0
PROG = "ditto-compat"
# 128 + SIGINT, what shells report for a command stopped with Ctrl-C.
EXIT_INTERRUPTED = 130

# A command's work: given the API and the parsed arguments (and the output mode, which changes how much is
# fetched, e.g. live statuses for a connections table), what to print.
Action = Callable[[DittoApi, argparse.Namespace, str], Result]


def common_options(*, devops: bool) -> argparse.ArgumentParser:
    """A parent parser with ``--url``, the credentials (the devops user's for connections), ``--output``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("server")
    group.add_argument("--url", help=f"base URL of the Ditto API (env DITTO_URL, default {DEFAULT_URL})")
    if devops:
        group.add_argument(
            "--devops-user", help=f"devops user (env DITTO_DEVOPS_USER, default {DEFAULT_DEVOPS_USER[0]})"
        )
        group.add_argument("--devops-password", help="devops password (env DITTO_DEVOPS_PASSWORD)")
    else:
        group.add_argument("--user", help=f"user (env DITTO_USER, default {DEFAULT_USER[0]})")
        group.add_argument("--password", help="password (env DITTO_PASSWORD)")
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for an answer (default {DEFAULT_TIMEOUT_S:g})",
    )
    group.add_argument(
        "-o",
        "--output",
        choices=(JSON_MODE, TABLE_MODE),
        help="output format (default: table on a terminal, JSON otherwise)",
    )
    return parent


def endpoint_of(args: argparse.Namespace, environ: Mapping[str, str]) -> Endpoint:
    """Options first, then the environment, then the defaults of a local ditto-compat."""
    url = args.url or environ.get("DITTO_URL") or DEFAULT_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"the URL must look like http://host:port, not {url!r}")
    if hasattr(args, "devops_user"):
        user = args.devops_user or environ.get("DITTO_DEVOPS_USER") or DEFAULT_DEVOPS_USER[0]
        password = args.devops_password or environ.get("DITTO_DEVOPS_PASSWORD") or DEFAULT_DEVOPS_USER[1]
    else:
        user = args.user or environ.get("DITTO_USER") or DEFAULT_USER[0]
        password = args.password or environ.get("DITTO_PASSWORD") or DEFAULT_USER[1]
    return Endpoint(url=url, user=user, password=password, timeout=args.timeout)


def run(
    action: Action,
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Carry out ``action`` and print its result; 1 for a Ditto error, 2 for a usage error, 3 when the
    server cannot be reached."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    mode = output_mode(args.output, out)
    try:
        endpoint = endpoint_of(args, os.environ if environ is None else environ)
        with DittoApi(endpoint) as api:
            result = action(api, args, mode)
    except UsageError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except DittoApiError as exc:
        err.write(describe_error(exc) + "\n")
        return EXIT_DITTO_ERROR
    except ServerUnreachable as exc:
        err.write(f"{PROG}: {exc}\n")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    try:
        emit(result, mode, out)
        out.flush()
    except BrokenPipeError:
        # the reader (``| head``) has had enough; point stdout at /dev/null so the exit's flush stays quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_OK


def handler(action: Action) -> Callable[[argparse.Namespace], int]:
    """The ``handler`` a sub-command sets: ``args -> exit code``."""

    def handle(args: argparse.Namespace) -> int:
        return run(action, args)

    return handle


Verb = Callable[[str, str, Action], argparse.ArgumentParser]


def command_group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str, *, devops: bool
) -> Verb:
    """Add ``ditto-compat <name>``; returns ``verb(name, help, action)``, which adds one of its verbs with the
    common options and the handler that runs ``action``."""
    group = sub.add_parser(name, help=help_text)
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    parent = common_options(devops=devops)

    def verb(verb_name: str, verb_help: str, action: Action) -> argparse.ArgumentParser:
        parser = verbs.add_parser(verb_name, help=verb_help, description=verb_help, parents=[parent])
        parser.set_defaults(handler=handler(action))
        return parser

    return verb
