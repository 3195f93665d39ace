"""Real services for tests (DESIGN.md "Conventions", /work/shared/SERVICES.md): each is started as its own
process on a free 127.0.0.1 port, awaited until it answers, and stopped by its PID.

Reuse from any conftest::

    from tests import services

    @pytest.fixture(scope="session")
    def mongo_uri() -> Iterator[str]:
        yield from services.mongo_uri_fixture()

When a service cannot be started the fixture skips, or fails under ``CI=true`` (a missing service in CI is a
broken build, never a silent skip).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# Poll interval while a service starts; the wait returns at once if the process exits meanwhile.
_POLL_S = 0.02


class ServiceUnavailable(Exception):
    """A service could not be started or did not answer in time."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def service_missing(reason: str) -> None:
    """Fail under ``CI=true``, otherwise skip: the one policy for an unavailable real service."""
    if in_ci():
        pytest.fail(f"required test service unavailable (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def venv_script(name: str) -> str | None:
    """A console script installed next to the running interpreter (the venv's bin), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


@dataclass
class ServiceProcess:
    """A service process this test session started; stopped only through its own PID."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _log: IO[bytes] | None = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to our PID, then SIGKILL to the same PID if it does not exit in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()


def wait_for_tcp(service: ServiceProcess, deadline: float) -> None:
    """Until the port accepts a connection; raises if the process exits or the deadline passes."""
    while True:
        try:
            with socket.create_connection((LOOPBACK, service.port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(f"{service.name} did not listen on {service.port}: {service.log_tail()}")
        try:
            # Doubles as the poll pause and as exit detection: returns at once if the process died.
            code = service.process.wait(timeout=_POLL_S)
        except subprocess.TimeoutExpired:
            continue
        raise ServiceUnavailable(f"{service.name} exited with {code}: {service.log_tail()}")


def start_service(
    name: str,
    argv: Sequence[str],
    port: int,
    log_path: Path,
    *,
    deadline: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    ready: Callable[[ServiceProcess, float], None] | None = None,
) -> ServiceProcess:
    """Start ``argv`` with its output appended to ``log_path`` and wait until ``port`` accepts connections
    (and ``ready`` passes, when given) before ``deadline``; a service that fails to start is stopped by its
    PID and reported as :class:`ServiceUnavailable`."""
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env
        )
    except OSError as exc:
        log.close()
        raise ServiceUnavailable(f"cannot start {name}: {exc}") from exc
    service = ServiceProcess(name, process, port, log_path, log)
    try:
        wait_for_tcp(service, deadline)
        if ready is not None:
            ready(service, deadline)
    except BaseException:
        service.stop()
        raise
    return service


# -- MongoDB wire protocol: SecantusDB -----------------------------------------------------------------


def mongo_uri_for(port: int) -> str:
    # retryWrites=false: SecantusDB slows down ~10x after some thousand retryable writes (SERVICES.md).
    return f"mongodb://{LOOPBACK}:{port}/?retryWrites=false"


def start_secantusdb(*, timeout: float = STARTUP_TIMEOUT_S) -> ServiceProcess:
    """SecantusDB (a MongoDB-compatible server) in memory on a free loopback port, answering ``ping``."""
    exe = venv_script("secantusd-py")
    if exe is None:
        raise ServiceUnavailable("secantusd-py not installed (pip install secantusdb)")
    port = free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="secantusdb-"))
    return start_service(
        "secantusdb",
        [
            exe,
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--storage-path",
            ":memory:",
            "--log-level",
            "WARNING",
        ],
        port,
        log_dir / "secantusd.log",
        deadline=time.monotonic() + timeout,
        # A fresh working directory: the launcher auto-discovers ./secantusd.toml, which must not leak in.
        cwd=log_dir,
        ready=_wait_for_ping,
    )


def _wait_for_ping(service: ServiceProcess, deadline: float) -> None:
    remaining_ms = max(100, int((deadline - time.monotonic()) * 1000))
    client: MongoClient[dict[str, object]] = MongoClient(
        mongo_uri_for(service.port), serverSelectionTimeoutMS=remaining_ms, connectTimeoutMS=remaining_ms
    )
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        raise ServiceUnavailable(f"secantusdb does not answer ping: {exc}; {service.log_tail()}") from exc
    finally:
        client.close()


def fresh_database_name(prefix: str = "test") -> str:
    """A database name no other test uses: isolation without restarting the server."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def drop_mongo_database(uri: str, name: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


def mongo_uri_fixture() -> Iterator[str]:
    """Body of a session fixture: start SecantusDB, yield its URI (with ``retryWrites=false``), stop it."""
    try:
        service = start_secantusdb()
    except ServiceUnavailable as exc:
        service_missing(str(exc))
        raise  # unreachable: service_missing skips or fails
    try:
        yield mongo_uri_for(service.port)
    finally:
        service.stop()
