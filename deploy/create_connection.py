"""Create or update a connection from a JSON file, idempotently, and wait until it is open.

docker-compose.yml runs it once after the seeds are loaded (``python deploy/create_connection.py
deploy/mqtt-connection.json``); it works against any Ditto-compatible server. Standard library only, so it runs in
the ditto-compat image as it is.

Ditto lets a client choose a connection's id on neither ``POST`` (the server generates it) nor ``PUT`` (which
only modifies an existing connection), so the connection is found again by its ``name``: the first run creates
it, later runs replace its definition with the file's.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://ditto-compat:8080"
POLL_S = 0.5


class ApiError(Exception):
    """The server answered with an error status, or not at all."""


def _request(url: str, method: str, auth: str, body: Any = None, *, timeout: float = 10.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Basic {auth}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    # No proxy from the environment: the server is addressed directly (a compose service or localhost).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raise ApiError(f"{method} {url}: {error.code} {error.read().decode(errors='replace')}") from error
    except OSError as error:
        raise ApiError(f"{method} {url}: {error}") from error


def apply_connection(base_url: str, auth: str, definition: dict[str, Any]) -> str:
    """Create the connection, or replace the one with the same ``name``; returns its id."""
    name = definition.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError("the connection file needs a 'name': it is how the connection is found again")
    connections = f"{base_url}/api/2/connections"
    _status, listed = _request(f"{connections}?fields=id,name", "GET", auth)
    existing = [c["id"] for c in listed or [] if c.get("name") == name]
    body = {k: v for k, v in definition.items() if k != "id"}
    if existing:
        _request(f"{connections}/{existing[0]}", "PUT", auth, body)
        return str(existing[0])
    _status, created = _request(connections, "POST", auth, body)
    return str(created["id"])


def wait_until_open(base_url: str, auth: str, connection_id: str, timeout: float) -> str:
    """The connection's live status once it is ``open``, or the last one seen when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    live = "unknown"
    while True:
        _status, status = _request(f"{base_url}/api/2/connections/{connection_id}/status", "GET", auth)
        live = str((status or {}).get("liveStatus", "unknown"))
        if live == "open" or time.monotonic() >= deadline:
            return live
        time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the connection's JSON definition (with a 'name')")
    parser.add_argument("--url", default=os.environ.get("DITTO_URL", DEFAULT_URL), help="server base URL")
    parser.add_argument("--user", default=os.environ.get("DITTO_DEVOPS_USER", "devops"), help="DevOps user")
    parser.add_argument(
        "--password", default=os.environ.get("DITTO_DEVOPS_PASSWORD", "foobar"), help="DevOps password"
    )
    parser.add_argument("--uri", help="broker URI to use instead of the file's 'uri'")
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the connection to open (0: do not wait)"
    )
    args = parser.parse_args(argv)

    with open(args.file, encoding="utf-8") as file:
        definition: dict[str, Any] = json.load(file)
    if args.uri:
        definition["uri"] = args.uri
    auth = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
    base_url = args.url.rstrip("/")
    try:
        connection_id = apply_connection(base_url, auth, definition)
        live = wait_until_open(base_url, auth, connection_id, args.wait) if args.wait > 0 else "not awaited"
    except ApiError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"id": connection_id, "name": definition["name"], "liveStatus": live}))
    return 0 if live in ("open", "not awaited") else 2


if __name__ == "__main__":
    sys.exit(main())
