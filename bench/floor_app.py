"""The framework floor: a bare Starlette app answering the benchmark's request the cheapest honest way.

``bench/http_put.py`` measures ditto-compat's ``PUT /api/2/things/{id}/features/{f}/properties/{p}`` beside
this app, served by uvicorn with the same flags (one worker, uvloop/httptools when installed, access log
off). The floor does what any implementation of the request has to do and nothing more:

- routes the same URL shape through a Starlette router;
- checks the ``Authorization`` header against the one Basic credential (a string compare, no hashing);
- parses the JSON body with orjson;
- loads the thing's stored JSON document into a dict, sets the value at
  ``features/{f}/properties/{p}``, dumps it back with orjson and keeps the bytes in memory;
- answers 204 (201 when the property did not exist yet).

No policy check, no revision, no event, no journal, no database: the gap between ditto-compat and this app is
the cost of Ditto's semantics plus durable storage, and this app's own figure is what one Python process
with this ASGI stack can do at all on the machine.

Run: ``python bench/floor_app.py --host 127.0.0.1 --port 8081``.
"""

from __future__ import annotations

import argparse
import base64
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BASIC_AUTH = "Basic " + base64.b64encode(b"ditto:ditto").decode("ascii")
NEW_THING: bytes = orjson.dumps({"features": {}})

# thing id -> the thing's JSON document as stored bytes, as a database would hand it back
_things: dict[str, bytes] = {}


def _unauthorized() -> Response:
    return Response(status_code=401, headers={"www-authenticate": 'Basic realm="DITTO"'})


def _bad_request() -> Response:
    return Response(status_code=400)


async def put_thing(request: Request) -> Response:
    """``PUT /api/2/things/{thing_id}``: store the body as the thing (used to pre-create things)."""
    if request.headers.get("authorization") != BASIC_AUTH:
        return _unauthorized()
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _bad_request()
    if not isinstance(doc, dict):
        return _bad_request()
    thing_id: str = request.path_params["thing_id"]
    doc["thingId"] = thing_id
    created = thing_id not in _things
    _things[thing_id] = orjson.dumps(doc)
    return Response(status_code=201 if created else 204)


async def put_property(request: Request) -> Response:
    """``PUT /api/2/things/{thing_id}/features/{feature_id}/properties/{prop}``: set one property."""
    if request.headers.get("authorization") != BASIC_AUTH:
        return _unauthorized()
    try:
        value: Any = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _bad_request()
    params = request.path_params
    thing_id: str = params["thing_id"]
    thing: dict[str, Any] = orjson.loads(_things.get(thing_id, NEW_THING))
    features: dict[str, Any] = thing.setdefault("features", {})
    feature: dict[str, Any] = features.setdefault(params["feature_id"], {})
    properties: dict[str, Any] = feature.setdefault("properties", {})
    # the JSON pointer below /properties, e.g. "p" or "a/b/c"
    *parents, leaf = params["prop"].split("/")
    node = properties
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    created = leaf not in node
    node[leaf] = value
    _things[thing_id] = orjson.dumps(thing)
    return Response(status_code=201 if created else 204)


async def health(request: Request) -> Response:
    return Response(b'{"status":"UP"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/health", health, methods=["GET"]),
        Route("/api/2/things/{thing_id}", put_thing, methods=["PUT"]),
        Route(
            "/api/2/things/{thing_id}/features/{feature_id}/properties/{prop:path}",
            put_property,
            methods=["PUT"],
        ),
    ]
)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="The framework floor of bench/http_put.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # the same uvicorn.run arguments as ditto_compat.cli.serve: one worker, loop/http "auto" (uvloop and
    # httptools when installed), access log off
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
