"""A real ``python -m ditto_compat serve`` process for system tests.

In-process ASGI tests cannot show what a separate OS process does: durability across SIGKILL, the real socket
stack, clients in other languages. :class:`LiveServer` starts the server as a subprocess on a free loopback
port, waits until ``/health`` answers 200 (polling against a deadline, never a blind sleep) and stops it by
the PID it started, SIGTERM first and SIGKILL when that does not end it in time.

    with LiveServer(tmp_path / "data") as server:
        httpx.get(server.base_url + "/health")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

HOST = "127.0.0.1"
ENV_PREFIX = "DITTO_COMPAT_"
DEFAULT_USER = ("ditto", "ditto")
# How often readiness is polled; the wait on the process doubles as the pause, so an early exit is noticed at once.
POLL_INTERVAL_S = 0.05
# A port picked by free_port() can be taken by someone else before the server binds it; then try another.
BIND_ATTEMPTS = 3
LOG_TAIL_CHARS = 4000


class ServerStartError(RuntimeError):
    """The server exited or did not become healthy before the deadline; the message carries its log tail."""


def free_port(host: str = HOST) -> int:
    """A port the OS just reported free on ``host`` (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the child: the caller's, minus inherited ``DITTO_COMPAT_*`` settings (a developer's
    ``DITTO_COMPAT_MONGO_URI`` must not silently switch a test to another backend), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    # Unbuffered output: after a SIGKILL the log must still hold everything the server printed.
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class LiveServer:
    """One server process on ``data_dir``; :meth:`start` may be called again after :meth:`stop`/:meth:`kill`
    (a new process on the same data, e.g. to check what survived a crash)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        log_path: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.python = python
        self._fixed_port = port
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="ditto-compat-server-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server was never started")
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        if self.running:
            raise RuntimeError(f"the server is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._fixed_port is not None else BIND_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self.port = self._fixed_port or free_port()
            self._spawn()
            try:
                self._wait_healthy()
                return self
            except ServerStartError as exc:
                self._reap()
                lost_port_race = "address already in use" in str(exc).lower()
                if not lost_port_race or attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if the process outlives ``stop_timeout``; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            # Signalling our own Popen child by its PID: it is not reaped yet, so the PID cannot be reused.
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=self.stop_timeout)
        self._close_log()
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL: the crash a durable server must survive. Returns the exit code (``-9``)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=self.stop_timeout)
        self._close_log()
        return proc.returncode

    def restart(self) -> Self:
        """Graceful stop and a fresh process on the same data directory (and a new port unless fixed)."""
        self.stop()
        return self.start()

    # trust_env=False on every client: a proxy configured in the environment must never see loopback test
    # traffic (nor turn a refused connection into a proxy's 502).
    def client(self, *, timeout: float = 10.0, auth: tuple[str, str] = DEFAULT_USER) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=auth, timeout=timeout, trust_env=False)

    def async_client(
        self, *, timeout: float = 10.0, auth: tuple[str, str] = DEFAULT_USER
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, auth=auth, timeout=timeout, trust_env=False)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------ internals
    def command(self) -> list[str]:
        assert self.port is not None
        return [
            self.python,
            "-m",
            "ditto_compat",
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]

    def _spawn(self) -> None:
        self._close_log()
        # Append: a restarted server's log follows the crashed one's, which is what one wants to read.
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"\n==== {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=server_env(self.env),
        )

    def _wait_healthy(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while True:
                if proc.poll() is not None:
                    raise ServerStartError(
                        f"ditto-compat exited with {proc.returncode} before it was healthy; log "
                        f"{self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    response = client.get("/health")
                    if response.status_code == 200:
                        return
                    last_error = f"/health answered {response.status_code}: {response.text[:200]}"
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                if time.monotonic() >= deadline:
                    raise ServerStartError(
                        f"ditto-compat (pid {proc.pid}) not healthy within {self.startup_timeout}s "
                        f"({last_error}); log {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=POLL_INTERVAL_S)

    def _reap(self) -> None:
        """After a failed start: make sure the process we spawned is gone."""
        if self._proc is not None and self._proc.poll() is None:
            self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
