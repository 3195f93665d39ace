"""Mosquitto for the MQTT 3.1.1 and MQTT 5 tests (SERVICES.md): Debian's ``/usr/sbin/mosquitto`` on a free
127.0.0.1 port, started by this test session and stopped by its PID; never the machine's own broker.

- ``mosquitto``: one anonymous broker for the session;
- ``mosquitto_with_password``: one broker that only lets ``ditto`` / ``secret`` in;
- ``start_mosquitto()``: a broker of a test's own, for tests that stop and restart it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import services
from tests.brokers.tls import Certificates, make_certificates

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
USERNAME = "ditto"
PASSWORD = "secret"


@dataclass
class Mosquitto:
    """A Mosquitto this session started; ``restart`` brings it back on the same port."""

    config_path: Path
    port: int
    service: services.ServiceProcess | None = None

    @property
    def uri(self) -> str:
        return f"tcp://{services.LOOPBACK}:{self.port}"

    def uri_with(self, username: str, password: str) -> str:
        return f"tcp://{username}:{password}@{services.LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.service = services.start_service(
            "mosquitto",
            [MOSQUITTO, "-c", str(self.config_path)],
            self.port,
            self.config_path.with_suffix(".log"),
            deadline=time.monotonic() + services.STARTUP_TIMEOUT_S,
        )

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    def restart(self) -> None:
        self.stop()
        self.start()


def start_mosquitto(*, password: bool = False, tls: Certificates | None = None) -> Mosquitto:
    """A fresh broker on a free port (anonymous, or ``ditto``/``secret`` only); with ``tls``, TLS only, with the
    server certificate of ``tls`` and a client certificate signed by its CA required. Raises
    ServiceUnavailable."""
    if not Path(MOSQUITTO).is_file():
        raise services.ServiceUnavailable(f"{MOSQUITTO} not installed (apt-get install mosquitto)")
    directory = Path(tempfile.mkdtemp(prefix="mosquitto-"))
    port = services.free_port()
    lines = [
        f"listener {port} {services.LOOPBACK}",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        # Room for the throughput probe and the tests' bursts: the defaults (20 in flight, 1000 queued per
        # client) would throttle a client that acknowledges after its handler.
        "max_inflight_messages 1000",
        "max_queued_messages 1000000",
    ]
    if password:
        password_file = directory / "passwords"
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", "-c", str(password_file), USERNAME, PASSWORD],
            check=True,
            capture_output=True,
        )
        # Mosquitto started as root reads the file after switching to its own user.
        directory.chmod(0o755)
        password_file.chmod(0o644)
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines.append("allow_anonymous true")
    if tls is not None:
        lines += [
            f"cafile {tls.path('ca.crt')}",
            f"certfile {tls.path('server.crt')}",
            f"keyfile {tls.path('server.key')}",
            "require_certificate true",
        ]
    config_path = directory / "mosquitto.conf"
    config_path.write_text("\n".join(lines) + "\n")
    broker = Mosquitto(config_path, port)
    try:
        broker.start()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return broker


def _session_broker(*, password: bool) -> Iterator[Mosquitto]:
    try:
        broker = start_mosquitto(password=password)
    except (services.ServiceUnavailable, subprocess.CalledProcessError) as exc:
        services.service_missing(str(exc))
        raise  # unreachable: service_missing skips or fails
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.config_path.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """An anonymous Mosquitto for the whole session."""
    yield from _session_broker(password=False)


@pytest.fixture(scope="session")
def mosquitto_with_password() -> Iterator[Mosquitto]:
    """A Mosquitto that accepts only ``ditto`` / ``secret``."""
    yield from _session_broker(password=True)


@pytest.fixture(scope="session")
def mosquitto_with_tls() -> Iterator[tuple[Mosquitto, Certificates]]:
    """A Mosquitto on TLS that requires a client certificate, and the certificates (tests/brokers/tls.py)."""
    # not under pytest's tmp_path: its directories are private to root, and the broker runs as its own user
    directory = Path(tempfile.mkdtemp(prefix="mosquitto-tls-"))
    try:
        certificates = make_certificates(directory)
        broker = start_mosquitto(tls=certificates)
    except (services.ServiceUnavailable, subprocess.CalledProcessError) as exc:
        services.service_missing(str(exc))
        raise  # unreachable: service_missing skips or fails
    try:
        yield broker, certificates
    finally:
        broker.stop()
        shutil.rmtree(broker.config_path.parent, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def own_mosquitto() -> Iterator[Mosquitto]:
    """A Mosquitto of this test alone, which it may stop and restart."""
    yield from _session_broker(password=False)
