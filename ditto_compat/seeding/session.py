"""What ``seed`` and ``simulate`` share: the HTTP client, waiting for the server, the owner subject, and
reading the seeded things back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

# Ditto answers at most this many ids per GET /things?ids=...
IDS_PER_REQUEST = 50


def http_client(url: str, user: str, password: str, timeout: float) -> httpx.AsyncClient:
    # trust_env=False: a proxy from the environment must not see requests meant for this server.
    return httpx.AsyncClient(
        base_url=url,
        auth=(user, password),
        timeout=timeout,
        trust_env=False,
        limits=httpx.Limits(max_connections=64),
    )


async def wait_healthy(client: httpx.AsyncClient, within: float) -> None:
    """Polls ``/health`` until it answers 200; raises ``TimeoutError`` with the last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last = "no answer"
    while True:
        try:
            r = await client.get("/health")
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if loop.time() >= deadline:
            raise TimeoutError(f"{client.base_url} not healthy within {within:.0f} s ({last})")
        await asyncio.sleep(0.2)


async def owner_subject(client: httpx.AsyncClient, user: str, given: str | None) -> str:
    """``given``, else the caller's default subject from ``/whoami``, else ``nginx:<user>``."""
    if given:
        return given
    try:
        r = await client.get("/api/2/whoami")
        if r.status_code == 200:
            subject = r.json().get("defaultSubject")
            if isinstance(subject, str) and subject:
                return subject
    except (httpx.HTTPError, ValueError):
        pass
    return f"nginx:{user}"


async def fetch_things(client: httpx.AsyncClient, thing_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The things among ``thing_ids`` the user may read (missing ones are simply absent)."""
    found: list[dict[str, Any]] = []
    for i in range(0, len(thing_ids), IDS_PER_REQUEST):
        chunk = thing_ids[i : i + IDS_PER_REQUEST]
        r = await client.get("/api/2/things", params={"ids": ",".join(chunk)})
        r.raise_for_status()
        found.extend(t for t in r.json() if isinstance(t, dict))
    return found
