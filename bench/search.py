"""Search benchmark: six RQL query shapes over many seeded Things, run by ``ditto-compat serve``.

Seeds ``--things`` Things (default 100,000) straight into a fresh SQLite store through the storage port (the
same ``commit`` the server uses, so the search index is built exactly as in production), under one shared
policy, then starts the server on that data and drives each query shape with ``wrk`` for ``--duration``
seconds. Prints queries/s and latency p50/p99 per shape, the server's RSS and the database size per Thing.
``--mongo-uri`` runs the same against MongoDB instead (use a smaller ``--things``: the test server is slow).

    .venv/bin/python bench/search.py                      # 100,000 things on SQLite
    .venv/bin/python bench/search.py --things 5000 --mongo-uri 'mongodb://127.0.0.1:PORT/?retryWrites=false'

Targets (reported, not enforced): >= 2,000 queries/s and p99 <= 10 ms for indexed equality; RSS <= 200 MB and
<= 2 kB of storage per Thing. Every process is stopped by its PID; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_put import HOST, Server, free_port, request

from ditto_compat.domain.entity import EntityState
from ditto_compat.persistence.factory import SQLITE_FILENAME, create_store
from ditto_compat.persistence.ports import EntityWrite, PolicyReaders, RevisionConflict, Store

POLICY_ID = "bench:fleet"
HALLS = [f"hall-{i}" for i in range(50)]
NOW = "2026-12-01T00:00:00.000Z"

WRK_LUA = r"""
local paths = {}
local auth = "Basic ZGl0dG86ZGl0dG8="
local counter = 0
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  counter = math.random(#paths)
end
request = function()
  counter = counter % #paths + 1
  return wrk.format("GET", paths[counter], {["Authorization"] = auth})
end
done = function(summary, latency, requests)
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,'
    .. '"errors":%d,"non2xx":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def thing(i: int) -> dict[str, object]:
    rnd = random.Random(i)
    return {
        "thingId": f"bench:sensor-{i:06d}",
        "policyId": POLICY_ID,
        "definition": "org.acme:sensor:1.0.0",
        "attributes": {
            "location": HALLS[i % len(HALLS)],
            "serial": f"SN-{i:06d}",
            "manufacturer": rnd.choice(["ACME", "Globex", "Initech"]),
            "installed": 2015 + i % 10,
        },
        "features": {
            "temperature": {"properties": {"value": round(rnd.uniform(-10, 45), 2), "unit": "C"}},
            "battery": {"properties": {"level": rnd.randint(0, 100)}},
        },
    }


async def seed(store: Store, count: int) -> float:
    start = time.perf_counter()
    policy = {
        "policyId": POLICY_ID,
        "entries": {
            "OWNER": {
                "subjects": {"nginx:ditto": {"type": "user"}},
                "resources": {
                    "thing:/": {"grant": ["READ", "WRITE"], "revoke": []},
                    "policy:/": {"grant": ["READ", "WRITE"], "revoke": []},
                },
            }
        },
    }
    await store.commit(
        [
            EntityWrite(
                "policies",
                0,
                EntityState(POLICY_ID, 1, policy, NOW, NOW),
                {"type": "policies.events:policyCreated", "path": "/", "value": policy, "revision": 1},
                PolicyReaders(POLICY_ID, ("nginx:ditto",), True),
            )
        ]
    )
    batch = 500
    for first in range(0, count, batch):
        writes = []
        for i in range(first, min(first + batch, count)):
            doc = thing(i)
            thing_id = str(doc["thingId"])
            event = {
                "type": "things.events:thingCreated",
                "thingId": thing_id,
                "action": "created",
                "path": "/",
                "value": doc,
                "revision": 1,
                "timestamp": NOW,
            }
            writes.append(EntityWrite("things", 0, EntityState(thing_id, 1, doc, NOW, NOW), event))
        await asyncio.gather(*(_commit(store, w) for w in writes))
    return time.perf_counter() - start


async def _commit(store: Store, write: EntityWrite) -> None:
    # A MongoDB transaction may fail on a transient write conflict with a concurrent one; the server retries
    # such a commit as the command path does.
    for _attempt in range(20):
        try:
            await store.commit([write])
            return
        except RevisionConflict:
            await asyncio.sleep(0.001)
    raise RuntimeError(f"could not store {write.state.entity_id}")


def shapes(count: int) -> dict[str, list[str]]:
    rnd = random.Random(7)
    picks = [rnd.randrange(count) for _ in range(500)]

    def url(filter_text: str, option: str | None = None, path: str = "/api/2/search/things") -> str:
        out = f"{path}?filter={quote(filter_text, safe='')}"
        return out + (f"&option={quote(option, safe='')}" if option else "")

    return {
        "by id": [url(f'eq(thingId,"bench:sensor-{i:06d}")') for i in picks],
        "attribute equality": [url(f'eq(attributes/serial,"SN-{i:06d}")') for i in picks],
        "range on a feature property": [
            url(
                f"and(gt(features/temperature/properties/value,{t}),"
                f"lt(features/temperature/properties/value,{t + 0.2:.2f}))"
            )
            for t in (round(rnd.uniform(-10, 44), 2) for _ in range(200))
        ],
        "like": [url(f'like(attributes/serial,"SN-0{i:03d}*")', "size(10)") for i in range(0, 1000, 5)],
        "and/or with sort": [
            url(
                f'and(or(eq(attributes/location,"{h}"),eq(attributes/location,"{HALLS[(n + 1) % 50]}")),'
                f"gt(features/battery/properties/level,90))",
                "sort(-features/temperature/properties/value),size(20)",
            )
            for n, h in enumerate(HALLS)
        ],
        "count": [url(f'eq(attributes/location,"{h}")', path="/api/2/search/things/count") for h in HALLS],
    }


def run_wrk(script: Path, paths_file: Path, port: int, connections: int, duration: float) -> dict[str, float]:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{port}",
        "--",
        str(paths_file),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = data["duration_us"] / 1e6
    return {
        "qps": data["requests"] / seconds,
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "errors": data["errors"] + data["non2xx"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--things", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per query shape")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--mongo-uri", default=None)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="ditto-search-bench-"))
    database = f"bench{int(time.time())}"
    try:
        store = create_store(data_dir=str(tmp), mongo_uri=args.mongo_uri, mongo_database=database)

        async def do_seed() -> float:
            await store.open()
            try:
                return await seed(store, args.things)
            finally:
                await store.close()

        seconds = asyncio.run(do_seed())
        print(f"seeded {args.things} things in {seconds:.1f} s ({args.things / seconds:.0f}/s)")
        size_note = ""
        if args.mongo_uri is None:
            db_bytes = sum(p.stat().st_size for p in tmp.glob(SQLITE_FILENAME + "*"))
            size_note = f", database {db_bytes / 1e6:.1f} MB = {db_bytes / args.things:.0f} bytes per thing"
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "ditto_compat",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--data-dir",
            str(tmp),
            "--log-level",
            "warning",
        ]
        if args.mongo_uri:
            argv += ["--mongo-uri", args.mongo_uri, "--mongo-database", database]
        server = Server("ditto-compat", argv, port, tmp / "server.log")
        server.start()
        try:
            idle = server.rss_mb()
            status, body = request(port, "GET", "/api/2/search/things/count", None)
            assert status == 200 and int(body) == args.things, (status, body)
            script = tmp / "search.lua"
            script.write_text(WRK_LUA)
            rows = []
            for name, paths in shapes(args.things).items():
                paths_file = tmp / "paths.txt"
                paths_file.write_text("\n".join(paths) + "\n")
                run_wrk(script, paths_file, port, args.connections, 1.0)  # warm-up
                rows.append((name, run_wrk(script, paths_file, port, args.connections, args.duration)))
            after = server.rss_mb()
        finally:
            server.stop()
        backend = "mongodb" if args.mongo_uri else "sqlite"
        print(
            f"\n{backend}, {args.things} things, {args.connections} connections, wrk -t1, "
            "2 CPUs (client on the same machine)"
        )
        print(f"{'query shape':<30} {'q/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for name, r in rows:
            print(f"{name:<30} {r['qps']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {int(r['errors']):7d}")
        print(f"server RSS: idle {idle:.1f} MiB, after the run {after:.1f} MiB{size_note}")
        print(
            "BENCH_JSON "
            + json.dumps(
                {
                    "backend": backend,
                    "things": args.things,
                    "rows": dict(rows),
                    "rss_idle_mb": idle,
                    "rss_after_mb": after,
                }
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
