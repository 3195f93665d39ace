"""``ditto-compat seed``: the catalog loaded through the API, with a summary per domain."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

import httpx

from ditto_compat.seeding.catalog import SeedError, load_catalog, parse_only
from ditto_compat.seeding.commands import credentials
from ditto_compat.seeding.loader import Result, Seeder, SeedReport
from ditto_compat.seeding.session import http_client, owner_subject, wait_healthy


def _summary(report: SeedReport, domains: list[str]) -> list[str]:
    lines = []
    width = max(len(d) for d in domains)
    for domain in domains:
        policy = report.counts(domain, "policy")
        things = report.counts(domain, "thing")
        policy_result = next((r.value for r in Result if policy[r]), "-")
        text = (
            f"  {domain:<{width}}  policy {policy_result:<9}  things: {things[Result.CREATED]} created, "
            f"{things[Result.UPDATED]} updated, {things[Result.UNCHANGED]} unchanged"
        )
        if things[Result.FAILED]:
            text += f", {things[Result.FAILED]} failed"
        lines.append(text)
    total = report.counts()
    lines.append(
        f"total: {total[Result.CREATED]} created, {total[Result.UPDATED]} updated, "
        f"{total[Result.UNCHANGED]} unchanged, {total[Result.FAILED]} failed"
    )
    return lines


async def seed_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    url, user, password = credentials(args, environ)
    async with http_client(url, user, password, args.timeout) as client:
        try:
            if args.wait:
                await wait_healthy(client, args.wait)
            owner = await owner_subject(client, user, args.owner_subject)
            domains = load_catalog(
                args.seeds_dir, only=parse_only(args.only), owner=owner, viewer=args.viewer_subject
            )
            print(f"seeding {url} for {owner} ({len(domains)} domains) ...", file=sys.stderr)
            report = await Seeder(client, concurrency=args.concurrency, reset=args.reset).seed(domains)
        except (SeedError, TimeoutError) as exc:
            print(f"ditto-compat seed: {exc}", file=sys.stderr)
            return 2
        except httpx.HTTPError as exc:
            print(f"ditto-compat seed: cannot reach {url}: {exc}", file=sys.stderr)
            return 1
    for failure in report.failures:
        print(f"failed: {failure.kind} {failure.entity_id}: {failure.detail}", file=sys.stderr)
    print("\n".join(_summary(report, [d.name for d in domains])))
    return 0 if report.ok else 1
