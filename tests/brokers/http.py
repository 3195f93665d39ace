"""A local HTTP endpoint for the HTTP push tests: an in-process uvicorn on a free 127.0.0.1 port that records
every request and answers with the status its path asks for (``.../status/<code>/...``), 204 otherwise; under
``/oauth2/token`` it issues OAuth2 tokens."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn

from tests import services
from tests.brokers.tls import Certificates, make_certificates


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingEndpoint:
    port: int
    requests: list[RecordedRequest] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    scheme: str = "http"

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{services.LOOPBACK}:{self.port}"

    def matching(self, prefix: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path.startswith(prefix)]

    async def wait_for(self, prefix: str, count: int = 1, within_s: float = 10.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + within_s
        while len(self.matching(prefix)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"fewer than {count} requests to {prefix} within {within_s}s")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                continue
        return self.matching(prefix)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        path: str = scope["path"]
        self.requests.append(
            RecordedRequest(scope["method"], path, scope["query_string"].decode(), headers, body)
        )
        self.arrived.set()
        if path.startswith("/oauth2/token"):
            await self._token(send, path)
            return
        status = 204
        parts = path.split("/")
        for name, value in itertools.pairwise(parts):
            if name == "status" and value.isdigit():
                status = int(value)
                break
        reply = b"" if status == 204 else f"status {status}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"x-endpoint", b"recording")],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    async def _token(self, send: Any, path: str) -> None:
        """An OAuth2 token endpoint: a JSON Web Token (unsigned; readers only read its claims) that expires after
        the seconds the path names (``/oauth2/token/<seconds>``, default an hour), numbered by the tokens
        issued."""
        seconds = int(path.rsplit("/", 1)[1]) if path.rsplit("/", 1)[1].isdigit() else 3600
        issued = sum(1 for request in self.requests if request.path.startswith("/oauth2/token"))
        claims = {"sub": "ditto-compat", "exp": int(time.time()) + seconds, "n": issued}
        token = ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
            for part in ({"alg": "none", "typ": "JWT"}, claims)
        )
        body = json.dumps({"access_token": token + ".sig", "token_type": "Bearer", "expires_in": seconds})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})


@pytest.fixture(scope="session")
async def http_endpoint() -> AsyncIterator[RecordingEndpoint]:
    endpoint = RecordingEndpoint(services.free_port())
    config = uvicorn.Config(
        endpoint, host=services.LOOPBACK, port=endpoint.port, log_level="warning", lifespan="off"
    )
    async for running in _serve(config, endpoint):
        yield running


@pytest.fixture(scope="session")
async def https_endpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[RecordingEndpoint, Certificates]]:
    """The recording endpoint on HTTPS, with the server certificate of tests/brokers/tls.py, requiring a client
    certificate signed by its CA."""
    try:
        certificates = make_certificates(tmp_path_factory.mktemp("https"))
    except (services.ServiceUnavailable, subprocess.CalledProcessError) as exc:
        services.service_missing(str(exc))
        raise  # unreachable: service_missing skips or fails
    endpoint = RecordingEndpoint(services.free_port(), scheme="https")
    config = uvicorn.Config(
        endpoint,
        host=services.LOOPBACK,
        port=endpoint.port,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(certificates.path("server.crt")),
        ssl_keyfile=str(certificates.path("server.key")),
        ssl_ca_certs=str(certificates.path("ca.crt")),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    async for running in _serve(config, endpoint):
        yield running, certificates


async def _serve(config: uvicorn.Config, endpoint: RecordingEndpoint) -> AsyncIterator[RecordingEndpoint]:
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + services.STARTUP_TIMEOUT_S
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            server.should_exit = True
            services.service_missing("the recording HTTP endpoint did not start")
        await asyncio.sleep(0.01)
    try:
        yield endpoint
    finally:
        server.should_exit = True
        await task
