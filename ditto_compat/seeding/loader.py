"""Loads the seed domains into a running Ditto-compatible server through its HTTP API, idempotently.

Per entity: GET it; missing -> PUT with ``If-None-Match: *`` (created; a 412 means someone created it
meanwhile, so it is looked at again); present and equal in what the seed owns -> unchanged; present and
different -> merge PATCH (things) or PUT (policies) with ``If-Match`` of the ETag just read (updated; a 412
means it changed meanwhile, so it is looked at again). Policies go first (things refer to them), then all
things concurrently.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import httpx

from ditto_compat.seeding.catalog import JsonObject, SeedDomain
from ditto_compat.seeding.diff import policy_differs, thing_patch

# A 412 answers a race with another writer; after this many in a row the entity is reported as failed.
MAX_ATTEMPTS = 4
MERGE_PATCH = "application/merge-patch+json"


class Result(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What seeding did to one entity."""

    domain: str
    kind: str  # "policy" or "thing"
    entity_id: str
    result: Result
    detail: str = ""


@dataclass
class SeedReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self, domain: str | None = None, kind: str | None = None) -> Counter[Result]:
        return Counter(
            o.result
            for o in self.outcomes
            if (domain is None or o.domain == domain) and (kind is None or o.kind == kind)
        )

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result is Result.FAILED]

    @property
    def ok(self) -> bool:
        return not self.failures


def _quoted(entity_id: str) -> str:
    return quote(entity_id, safe=":")


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    if isinstance(body, dict) and "message" in body:
        return f"{response.status_code} {body.get('error', '')}: {body['message']}"
    return f"{response.status_code} {response.text[:200]}"


class Seeder:
    """Seeds domains through ``client`` (an ``httpx.AsyncClient`` with the base URL and the owner's auth)."""

    def __init__(self, client: httpx.AsyncClient, *, concurrency: int = 16, reset: bool = False) -> None:
        self._client = client
        self._limit = asyncio.Semaphore(concurrency)
        self._reset = reset

    async def seed(self, domains: Sequence[SeedDomain]) -> SeedReport:
        report = SeedReport()
        policies = await asyncio.gather(*(self._guarded(d.name, "policy", d.policy_id, d) for d in domains))
        report.outcomes.extend(policies)
        failed_policies = {o.domain for o in policies if o.result is Result.FAILED}
        jobs = []
        for domain in domains:
            for thing in domain.things:
                if domain.name in failed_policies:
                    # Creating the things anyway would give each its own default policy: not what was asked.
                    detail = f"not seeded: policy {domain.policy_id} failed"
                    report.outcomes.append(
                        Outcome(domain.name, "thing", thing["thingId"], Result.FAILED, detail)
                    )
                else:
                    jobs.append(self._guarded(domain.name, "thing", thing["thingId"], thing))
        report.outcomes.extend(await asyncio.gather(*jobs))
        return report

    async def _guarded(self, domain: str, kind: str, entity_id: str, subject: Any) -> Outcome:
        async with self._limit:
            try:
                for _ in range(MAX_ATTEMPTS):
                    if kind == "policy":
                        result, detail = await self._seed_policy(subject)
                    else:
                        result, detail = await self._seed_thing(subject)
                    if result is not None:
                        return Outcome(domain, kind, entity_id, result, detail)
                return Outcome(domain, kind, entity_id, Result.FAILED, "kept changing while being seeded")
            except httpx.HTTPError as exc:
                return Outcome(domain, kind, entity_id, Result.FAILED, f"{type(exc).__name__}: {exc}")

    async def _seed_policy(self, domain: SeedDomain) -> tuple[Result | None, str]:
        path = f"/api/2/policies/{_quoted(domain.policy_id)}"
        current = await self._client.get(path)
        if current.status_code == 404:
            created = await self._client.put(path, json=domain.policy, headers={"If-None-Match": "*"})
            return self._written(created, Result.CREATED)
        if current.status_code != 200:
            return Result.FAILED, _error_text(current)
        if not policy_differs(current.json(), domain.policy):
            return Result.UNCHANGED, ""
        headers = {"If-Match": current.headers.get("etag", "*")}
        updated = await self._client.put(path, json=domain.policy, headers=headers)
        return self._written(updated, Result.UPDATED)

    async def _seed_thing(self, thing: JsonObject) -> tuple[Result | None, str]:
        path = f"/api/2/things/{_quoted(thing['thingId'])}"
        current = await self._client.get(path)
        if current.status_code == 404:
            body = {k: v for k, v in thing.items() if k != "thingId"}
            created = await self._client.put(path, json=body, headers={"If-None-Match": "*"})
            return self._written(created, Result.CREATED)
        if current.status_code != 200:
            return Result.FAILED, _error_text(current)
        patch = thing_patch(current.json(), thing, reset=self._reset)
        if not patch:
            return Result.UNCHANGED, ""
        headers = {"If-Match": current.headers.get("etag", "*"), "Content-Type": MERGE_PATCH}
        updated = await self._client.patch(path, json=patch, headers=headers)
        return self._written(updated, Result.UPDATED)

    @staticmethod
    def _written(response: httpx.Response, result: Result) -> tuple[Result | None, str]:
        if response.status_code == 412:
            return None, ""  # someone else wrote first: look again
        if response.is_success:
            return result, ""
        return Result.FAILED, _error_text(response)
