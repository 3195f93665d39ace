"""Cost of policy enforcement per request, for a typical 3-entry policy (owner, reader with a revoke, a device
that may write one feature) and a sensor-like Thing.

Prints microseconds per operation: compiling the policy (once per policy revision), the checks a GET and a
PUT make, the READ view of the whole Thing, and the cached enforcer lookup through a real SQLite store (which
re-reads the policy's revision on every request so that a policy change applies at once).

    .venv/bin/python bench/enforcement.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ditto_compat.domain.enforcer import READ, WRITE, Enforcer
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.policy_resolution import resolve_entries
from ditto_compat.persistence.ports import EntityWrite
from ditto_compat.persistence.sqlite import SqliteStore
from ditto_compat.service.enforcement import EnforcerCache

RW = {"grant": ["READ", "WRITE"], "revoke": []}
POLICY: dict[str, Any] = {
    "policyId": "bench:policy",
    "entries": {
        "OWNER": {
            "subjects": {"nginx:owner": {"type": "user"}},
            "resources": {"thing:/": RW, "policy:/": RW, "message:/": RW},
        },
        "READER": {
            "subjects": {"nginx:dashboard": {"type": "user"}, "nginx:ops": {"type": "user"}},
            "resources": {
                "thing:/": {"grant": ["READ"], "revoke": []},
                "thing:/attributes/maintenance": {"grant": [], "revoke": ["READ"]},
            },
        },
        "DEVICE": {
            "subjects": {"nginx:device-001": {"type": "device"}},
            "resources": {"thing:/features/temperature": RW},
        },
    },
}
THING: dict[str, Any] = {
    "thingId": "bench:sensor-1",
    "policyId": "bench:policy",
    "definition": "org.acme:sensor:1.0.0",
    "attributes": {
        "location": {"building": "B1", "floor": 3, "room": "3.14"},
        "manufacturer": "ACME",
        "maintenance": {"lastService": "2026-10-01", "technician": "jo"},
    },
    "features": {
        "temperature": {"properties": {"value": 21.5, "unit": "°C", "ts": "2026-12-01T08:00:00Z"}},
        "humidity": {"properties": {"value": 40.1, "unit": "%"}},
        "battery": {"properties": {"level": 87}, "desiredProperties": {"reportInterval": 60}},
    },
}


def per_op_us(fn: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return (now - start) / n * 1e6


async def per_op_us_async(fn: Callable[[], Awaitable[object]], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            await fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return (now - start) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per figure")
    seconds = parser.parse_args().seconds

    entries = resolve_entries(POLICY, {})
    enforcer = Enforcer.compile(entries, namespace="bench")
    reader, device = ("nginx:dashboard",), ("nginx:device-001",)
    rows: list[tuple[str, float]] = [
        (
            "compile the policy (once per revision)",
            per_op_us(lambda: Enforcer.compile(entries, namespace="bench"), seconds),
        ),
        (
            "GET check: partial READ on thing:/",
            per_op_us(lambda: enforcer.has_partial(reader, "thing:/", (READ,)), seconds),
        ),
        (
            "PUT check: unrestricted WRITE on a property",
            per_op_us(
                lambda: enforcer.has_unrestricted(
                    device, "thing:/features/temperature/properties/value", (WRITE,)
                ),
                seconds,
            ),
        ),
        (
            "READ view of the whole Thing (reader)",
            per_op_us(lambda: enforcer.read_view(reader, "thing:/", THING), seconds),
        ),
        (
            "READ view of the whole Thing (device)",
            per_op_us(lambda: enforcer.read_view(device, "thing:/", THING), seconds),
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "bench.sqlite3"))
        await store.open()
        try:
            state = EntityState("bench:policy", 1, POLICY, "2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z")
            await store.commit([EntityWrite("policies", 0, state, {"type": "policies.events:policyCreated"})])
            cache = EnforcerCache(store)
            await cache.enforcer("bench:policy", "bench")
            rows.append(
                (
                    "cached enforcer lookup (SQLite revision read)",
                    await per_op_us_async(lambda: cache.enforcer("bench:policy", "bench"), seconds),
                )
            )
        finally:
            await store.close()
    get_total = rows[1][1] + rows[3][1] + rows[5][1]
    put_total = rows[2][1] + rows[5][1]
    width = max(len(name) for name, _ in rows)
    print(f"{'operation':<{width}}  µs/op")
    for name, us in rows:
        print(f"{name:<{width}}  {us:8.2f}")
    print(f"{'=> enforcement per GET of a Thing':<{width}}  {get_total:8.2f}")
    print(f"{'=> enforcement per property PUT':<{width}}  {put_total:8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
