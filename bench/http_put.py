"""HTTP write benchmark: sustained ``PUT /api/2/things/{id}/features/f/properties/p`` on keep-alive connections.

Starts ``ditto-compat serve`` (SQLite, fresh temporary data dir) and the framework floor (``bench/floor_app.py``,
a bare Starlette app doing the equivalent JSON work) as separate uvicorn processes on free loopback ports,
pre-creates the things on both, warms up, then drives each with the same load for ``--duration`` seconds and
prints throughput, latency p50/p90/p99, their ratio, the server's CPU use and ditto-compat's resident memory
(``VmRSS``) idle and after the run. See ``bench/README.md``.

The load generator is ``wrk`` (compiled, epoll, one Lua state per thread) when it is on ``PATH``
(``apt-get install wrk``), else a Python asyncio client on raw keep-alive sockets (``--client python``).
Every process this script starts is stopped by its PID; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

HOST = "127.0.0.1"
USER, PASSWORD = "ditto", "ditto"
AUTHORIZATION = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode("ascii")
NAMESPACE = "bench"
FEATURE, PROPERTY = "f", "p"
REPO_ROOT = Path(__file__).resolve().parent.parent
FLOOR_APP = Path(__file__).resolve().parent / "floor_app.py"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
SEED_WORKERS = 8

# Targets of a later step (reported, not enforced).
TARGET_RPS = 5000.0
TARGET_P99_MS = 25.0
TARGET_IDLE_RSS_MB = 80.0
# CPU used by other processes during a measurement (100 = one core) above which the figures are flagged
NOISY_CPU_PERCENT = 15.0

ClientKind = Literal["wrk", "python"]

# wrk script: round-robin over the things, each thread starting at its own offset; the body is a number unique
# to each request, so that every PUT really changes the value. ``done`` prints one JSON line that this script parses.
WRK_LUA = r"""
local things, nthreads = 1000, 1
local prefix = "/api/2/things/__NAMESPACE__:thing-"
local suffix = "/features/__FEATURE__/properties/__PROPERTY__"
local headers = { ["Authorization"] = "__AUTHORIZATION__", ["Content-Type"] = "application/json" }
local counter = 0
local created = 0

function setup(thread)
  thread:set("tid", created)
  created = created + 1
end

function init(args)
  things = tonumber(args[1]) or things
  nthreads = tonumber(args[2]) or nthreads
  counter = (tid or 0) * math.floor(things / nthreads)
end

function request()
  counter = counter + 1
  -- the body is unique across threads, so that every write changes the stored value
  local body = tostring(counter * nthreads + (tid or 0))
  return wrk.format("PUT", prefix .. (counter % things) .. suffix, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True, slots=True)
class LoadResult:
    client: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    client_cpu_percent: float

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(slots=True)
class ServerRun:
    name: str
    load: LoadResult | None = None
    server_cpu_percent: float = 0.0
    # CPU used by everything else on the machine meanwhile (other processes), 100 = one core
    other_cpu_percent: float = 0.0
    memory_mb: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One server process, stopped by its PID."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = request(self.port, "GET", "/health", None, auth=False, timeout=2.0)
                if status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not healthy after {START_TIMEOUT_S:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def rss_mb(self, key: str = "VmRSS") -> float:
        """``VmRSS`` (or ``VmHWM``, the peak) from ``/proc/<pid>/status``, in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError(f"no {key} for pid {self.pid}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads) from ``/proc/<pid>/stat``."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        # after "pid (comm) ", field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------------
# plain HTTP for setup and checks


def request(
    port: int, method: str, path: str, body: Any, *, auth: bool = True, timeout: float = 10.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Authorization": AUTHORIZATION} if auth else {}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def thing_path(index: int) -> str:
    return f"/api/2/things/{NAMESPACE}:thing-{index}"


def property_path(index: int) -> str:
    return f"{thing_path(index)}/features/{FEATURE}/properties/{PROPERTY}"


def seed_things(port: int, count: int) -> float:
    """Create ``count`` things with feature ``f``, over a few keep-alive connections; returns seconds taken."""
    thing = {"attributes": {"bench": True}, "features": {FEATURE: {"properties": {PROPERTY: 0}}}}
    payload = json.dumps(thing).encode()
    headers = {"Authorization": AUTHORIZATION, "Content-Type": "application/json"}

    def create(indexes: range) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30.0)
        try:
            for index in indexes:
                conn.request("PUT", thing_path(index), body=payload, headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.status not in (201, 204):
                    raise RuntimeError(f"PUT {thing_path(index)} -> {response.status} {body[:300]!r}")
        finally:
            conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(SEED_WORKERS) as pool:
        chunks = [range(w, count, SEED_WORKERS) for w in range(SEED_WORKERS)]
        for future in [pool.submit(create, chunk) for chunk in chunks]:
            future.result()
    return time.perf_counter() - started


def check_put(port: int) -> None:
    status, body = request(port, "PUT", property_path(0), 0)
    if status != 204:
        raise RuntimeError(f"PUT {property_path(0)} -> {status} {body[:300]!r} (expected 204)")


# ---------------------------------------------------------------------------------------------------------
# load generators


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores, not idle or waiting for I/O), from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:9]]
    # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit_s: float, *, window_s: float = 2.0, busy_percent: float = 10.0) -> float | None:
    """Wait (at most ``limit_s``) until the machine was nearly idle for ``window_s``: other sessions' test
    runs on a shared 2-core machine would otherwise skew the figures. Returns the seconds waited, or
    ``None`` when the machine never went quiet."""
    started = time.monotonic()
    while True:
        before = machine_busy_seconds()
        time.sleep(window_s)
        if 100.0 * (machine_busy_seconds() - before) / window_s <= busy_percent:
            return time.monotonic() - started
        if time.monotonic() - started >= limit_s:
            return None


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    script: Path, port: int, *, connections: int, threads: int, duration_s: float, things: int
) -> LoadResult:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"http://{HOST}:{port}",
        "--",
        str(things),
        str(threads),
    ]
    cpu_before = children_cpu_seconds()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    client_cpu = children_cpu_seconds() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr or done.stdout}")
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"no BENCH_JSON line in wrk's output:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = data["duration_us"] / 1e6
    return LoadResult(
        client=f"wrk -t{threads}",
        connections=connections,
        duration_s=seconds,
        requests=data["requests"],
        rps=data["requests"] / seconds,
        p50_ms=data["p50_us"] / 1000.0,
        p90_ms=data["p90_us"] / 1000.0,
        p99_ms=data["p99_us"] / 1000.0,
        max_ms=data["max_us"] / 1000.0,
        errors={k: int(v) for k, v in data["errors"].items()},
        client_cpu_percent=100.0 * client_cpu / seconds,
    )


class _Tally:
    def __init__(self) -> None:
        self.latencies_ns: list[int] = []
        self.non_2xx = 0
        self.read_errors = 0
        self.connect_errors = 0
        self.sent = 0  # the body of each request, unique so that every PUT changes the stored value


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    start = lower.find(b"\r\ncontent-length:")
    if start >= 0:
        end = lower.index(b"\r\n", start + 2)
        length = int(lower[start + 17 : end])
        if length:
            await reader.readexactly(length)
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _connection(
    port: int, first: int, things: int, measure_from_ns: int, end_ns: int, tally: _Tally
) -> None:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        tally.connect_errors += 1
        return
    head = f"Host: {HOST}:{port}\r\nAuthorization: {AUTHORIZATION}\r\nContent-Type: application/json\r\n"
    counter = first
    try:
        while (now := time.perf_counter_ns()) < end_ns:
            counter += 1
            tally.sent += 1
            body = str(tally.sent)
            writer.write(
                f"PUT {property_path(counter % things)} HTTP/1.1\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            status = await _read_response(reader)
            if now >= measure_from_ns:
                tally.latencies_ns.append(time.perf_counter_ns() - now)
                if not 200 <= status < 400:
                    tally.non_2xx += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        tally.read_errors += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _python_load(
    port: int, connections: int, warmup_s: float, duration_s: float, things: int
) -> _Tally:
    tally = _Tally()
    start = time.perf_counter_ns()
    measure_from = start + int(warmup_s * 1e9)
    end = measure_from + int(duration_s * 1e9)
    stride = max(1, things // connections)
    await asyncio.gather(
        *(_connection(port, c * stride, things, measure_from, end, tally) for c in range(connections))
    )
    return tally


def percentile(sorted_values: Sequence[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[index])


def run_python_client(
    port: int, *, connections: int, warmup_s: float, duration_s: float, things: int
) -> LoadResult:
    """Asyncio client, raw keep-alive sockets, closed loop (one request in flight per connection).

    Warm-up and measurement run on the same connections; only responses to requests sent after the warm-up
    are counted."""
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    tally: _Tally = runner(_python_load(port, connections, warmup_s, duration_s, things))
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    latencies = sorted(tally.latencies_ns)
    return LoadResult(
        client="python asyncio",
        connections=connections,
        duration_s=duration_s,
        requests=len(latencies),
        rps=len(latencies) / duration_s,
        p50_ms=percentile(latencies, 50) / 1e6,
        p90_ms=percentile(latencies, 90) / 1e6,
        p99_ms=percentile(latencies, 99) / 1e6,
        max_ms=(latencies[-1] / 1e6) if latencies else 0.0,
        errors={"connect": tally.connect_errors, "read": tally.read_errors, "status": tally.non_2xx},
        client_cpu_percent=100.0 * cpu / (warmup_s + duration_s),
    )


# ---------------------------------------------------------------------------------------------------------
# the benchmark


def measure(
    server: Server, run: ServerRun, args: argparse.Namespace, client: ClientKind, script: Path | None
) -> None:
    def wrk(duration_s: float) -> LoadResult:
        assert script is not None
        return run_wrk(
            script,
            server.port,
            connections=args.connections,
            threads=args.threads,
            duration_s=duration_s,
            things=args.things,
        )

    if args.quiet_wait > 0:
        waited = wait_for_quiet(args.quiet_wait)
        if waited is None:
            print(f"the machine stayed busy for {args.quiet_wait:g} s: measuring {run.name} anyway")
        elif waited > 2.5:
            print(f"waited {waited:.0f} s for a quiet machine")
    if client == "wrk" and args.warmup > 0:
        wrk(args.warmup)
    # with the Python client the warm-up runs inside the measured call: CPU shares are taken over both
    cpu_before, busy_before, wall_before = server.cpu_seconds(), machine_busy_seconds(), time.perf_counter()
    if client == "wrk":
        load = wrk(args.duration)
    else:
        load = run_python_client(
            server.port,
            connections=args.connections,
            warmup_s=args.warmup,
            duration_s=args.duration,
            things=args.things,
        )
    wall = time.perf_counter() - wall_before
    run.load = load
    run.server_cpu_percent = 100.0 * (server.cpu_seconds() - cpu_before) / wall
    busy_percent = 100.0 * (machine_busy_seconds() - busy_before) / wall
    run.other_cpu_percent = max(0.0, busy_percent - run.server_cpu_percent - load.client_cpu_percent)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def report(args: argparse.Namespace, ditto: ServerRun, floor: ServerRun | None, info: dict[str, Any]) -> None:
    rows: list[tuple[str, ServerRun]] = [("ditto-compat", ditto)]
    if floor is not None:
        rows.append(("floor", floor))
    client = ditto.load.client if ditto.load else "?"
    print(
        f"\nPUT {property_path(0).replace('thing-0', 'thing-N')}  "
        f"{args.connections} keep-alive connections, {args.things} things, "
        f"{args.warmup:g} s warm-up + {args.duration:g} s measured, client: {client}, "
        f"{os.cpu_count()} CPUs (client on the same machine)"
    )
    header = f"{'server':<14}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    header += f"{'errors':>8}{'srv CPU%':>10}{'cli CPU%':>10}{'oth CPU%':>10}"
    print(header)
    print("-" * len(header))
    for name, run in rows:
        load = run.load
        if load is None:
            continue
        print(
            f"{name:<14}{load.rps:>10.0f}{load.p50_ms:>9.2f}{load.p90_ms:>9.2f}{load.p99_ms:>9.2f}"
            f"{load.max_ms:>9.1f}{load.error_count:>8}{run.server_cpu_percent:>10.0f}"
            f"{load.client_cpu_percent:>10.0f}{run.other_cpu_percent:>10.0f}"
        )
    ratios: dict[str, float | None] = {}
    if floor is not None and floor.load is not None and ditto.load is not None:
        ratios = {
            "rps": ratio(ditto.load.rps, floor.load.rps),
            "p50": ratio(ditto.load.p50_ms, floor.load.p50_ms),
            "p99": ratio(ditto.load.p99_ms, floor.load.p99_ms),
        }
        print(
            f"{'ditto/floor':<14}{ratios['rps'] or 0:>10.3f}{ratios['p50'] or 0:>9.2f}"
            f"{'':>9}{ratios['p99'] or 0:>9.2f}"
        )
    mem = ditto.memory_mb
    print(
        f"ditto-compat RSS: idle {mem['idle_rss']:.1f} MiB, after seeding {mem['seeded_rss']:.1f} MiB, "
        f"after the run {mem['after_rss']:.1f} MiB (peak {mem['peak_rss']:.1f} MiB)"
    )
    targets: dict[str, bool] = {}
    if ditto.load is not None:
        targets = {
            "rps": ditto.load.rps >= TARGET_RPS,
            "p99": ditto.load.p99_ms <= TARGET_P99_MS,
            "idle_rss": mem["idle_rss"] <= TARGET_IDLE_RSS_MB,
        }

        def mark(ok: bool) -> str:
            return "met" if ok else "NOT met"

        print(
            f"targets (reported only): >= {TARGET_RPS:.0f} req/s {mark(targets['rps'])}, "
            f"p99 <= {TARGET_P99_MS:g} ms {mark(targets['p99'])}, "
            f"idle RSS <= {TARGET_IDLE_RSS_MB:g} MB {mark(targets['idle_rss'])}"
        )
        if ditto.load.error_count:
            print(f"WARNING: ditto-compat errors {ditto.load.errors}")
    if floor is not None and floor.load is not None and floor.load.error_count:
        print(f"WARNING: floor errors {floor.load.errors}")
    for name, run in rows:
        if run.other_cpu_percent > NOISY_CPU_PERCENT:
            print(
                f"WARNING: other processes used {run.other_cpu_percent:.0f}% CPU during the {name} run: "
                "its figures are disturbed, run again on a quiet machine"
            )

    figures: dict[str, Any] = {
        "bench": "http_put",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "connections": args.connections,
        "things": args.things,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        **info,
        "ditto": {
            **(asdict(ditto.load) if ditto.load else {}),
            "server_cpu_percent": ditto.server_cpu_percent,
            "other_cpu_percent": ditto.other_cpu_percent,
        },
        "memory_mb": {k: round(v, 1) for k, v in ditto.memory_mb.items()},
        "ratio_ditto_over_floor": ratios,
        "targets_met": targets,
    }
    if floor is not None and floor.load is not None:
        figures["floor"] = {
            **asdict(floor.load),
            "server_cpu_percent": floor.server_cpu_percent,
            "other_cpu_percent": floor.other_cpu_percent,
        }
    print(json.dumps(figures, separators=(",", ":")))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2) + "\n")


@contextlib.contextmanager
def servers_stopped(servers: list[Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for server in reversed(servers):
            server.stop()


def floor_server(python: str, port: int, log_path: Path) -> Server:
    argv = [python, str(FLOOR_APP), "--host", HOST, "--port", str(port), "--log-level", "warning"]
    return Server("floor", argv, port, log_path)


def choose_client(requested: str) -> ClientKind:
    if requested == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if requested == "wrk":
        raise SystemExit("wrk is not on PATH (apt-get install wrk), or use --client python")
    print("wrk not found (apt-get install wrk): falling back to the Python asyncio client", file=sys.stderr)
    return "python"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per server (15)")
    parser.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per server (5)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections (64)")
    parser.add_argument("--things", type=int, default=1000, help="things pre-created and written (1000)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each server's warm-up, wait up to this many seconds for the machine to be idle (60; 0: off)",
    )
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-floor", action="store_true", help="measure ditto-compat only")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dir and logs")
    parser.add_argument("--json-out", help="also write the figures to this file")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the servers (this one, i.e. the venv's)"
    )
    args = parser.parse_args(argv)
    if args.connections < 1 or args.things < 1 or args.duration <= 0 or args.warmup < 0 or args.threads < 1:
        parser.error("--connections, --things, --threads >= 1; --duration > 0; --warmup >= 0")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    client = choose_client(args.client)
    work = Path(tempfile.mkdtemp(prefix="ditto-bench-"))
    data_dir = work / "data"
    data_dir.mkdir()
    script: Path | None = None
    if client == "wrk":
        script = work / "put.lua"
        lua = (
            WRK_LUA.replace("__NAMESPACE__", NAMESPACE)
            .replace("__FEATURE__", FEATURE)
            .replace("__PROPERTY__", PROPERTY)
            .replace("__AUTHORIZATION__", AUTHORIZATION)
        )
        script.write_text(lua)

    ditto_port = free_port()
    ditto = Server(
        "ditto-compat",
        [
            *(args.python, "-m", "ditto_compat", "serve"),
            *("--host", HOST, "--port", str(ditto_port)),
            *("--data-dir", str(data_dir), "--log-level", "warning"),
        ],
        ditto_port,
        work / "ditto.log",
    )
    servers: list[Server] = []
    ditto_run = ServerRun("ditto-compat")
    floor_run: ServerRun | None = None if args.no_floor else ServerRun("floor")
    info: dict[str, Any] = {"client": client}
    started = time.monotonic()
    try:
        with servers_stopped(servers):
            servers.append(ditto)
            ditto.start()
            time.sleep(1.0)  # let start-up allocations settle before reading "idle"
            ditto_run.memory_mb["idle_rss"] = ditto.rss_mb()
            print(f"ditto-compat up (pid {ditto.pid}), idle RSS {ditto_run.memory_mb['idle_rss']:.1f} MiB")
            info["seed_s_ditto"] = round(seed_things(ditto.port, args.things), 2)
            check_put(ditto.port)
            ditto_run.memory_mb["seeded_rss"] = ditto.rss_mb()
            print(f"seeded {args.things} things in {info['seed_s_ditto']} s; measuring ditto-compat")
            measure(ditto, ditto_run, args, client, script)
            ditto_run.memory_mb["after_rss"] = ditto.rss_mb()
            ditto_run.memory_mb["peak_rss"] = ditto.rss_mb("VmHWM")
            # the last write of every thing is durable and readable: a cheap end-to-end check
            status, body = request(ditto.port, "GET", property_path(1), None)
            info["ditto_check"] = {"status": status, "value": json.loads(body) if status == 200 else None}
            ditto.stop()

            if floor_run is not None:
                floor = floor_server(args.python, free_port(), work / "floor.log")
                servers.append(floor)
                floor.start()
                info["seed_s_floor"] = round(seed_things(floor.port, args.things), 2)
                check_put(floor.port)
                print(f"floor up (pid {floor.pid}); measuring the floor")
                measure(floor, floor_run, args, client, script)
                floor.stop()
    except Exception:
        for server in servers:
            print(f"--- {server.name} log ({server.log_path}) ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        if args.keep_data:
            print(f"data and logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    info["wall_s"] = round(time.monotonic() - started, 1)
    report(args, ditto_run, floor_run, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
