"""System tests: the real ``ditto-compat serve`` process, driven over loopback HTTP (DESIGN.md "tests/system")."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.live_server import LiveServer

# What a test passes to start one more server: data directory, extra CLI args, extra environment.
ServerFactory = Callable[..., LiveServer]


def in_ci() -> bool:
    """With ``CI=true`` a missing prerequisite is a failure, never a skip (DESIGN.md conventions)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Starts servers on demand (e.g. a second one on a crashed server's data) and stops every one of them
    at teardown, each by the PID it was started with."""
    started: list[LiveServer] = []

    def start(
        data_dir: Path | None = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> LiveServer:
        server = LiveServer(
            data_dir if data_dir is not None else tmp_path / "data",
            args=args,
            env=env,
            log_path=tmp_path / f"server-{len(started)}.log",
        )
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def live_server(server_factory: ServerFactory) -> LiveServer:
    """One healthy server on a fresh SQLite data directory under ``tmp_path``."""
    return server_factory()


@pytest.fixture
def server(server_factory: ServerFactory, tmp_path: Path) -> LiveServer:
    """A server with two users, alice and bob (passwords alice-pw, bob-pw)."""
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\nbob:{PLAIN}bob-pw\n")
    return server_factory(args=["--htpasswd", str(users)])
