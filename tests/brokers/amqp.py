"""RabbitMQ for the AMQP 0.9.1 tests (SERVICES.md): Debian's ``rabbitmq-server`` in the foreground on free
127.0.0.1 ports, with a node name, Erlang distribution port, epmd port, configuration and data directory of its
own, so it never meets the machine's RabbitMQ (which listens on 5672 with ``/etc/rabbitmq``'s configuration).

It takes some seconds to boot, so one broker serves the whole session (``rabbitmq``); ``restart`` stops and
starts it on the same ports. Stopping sends SIGTERM to the PID we started; the ``epmd`` the node spawned
outlives it, and is found among the processes that carry this broker's own ``ERL_EPMD_PORT`` in their
environment and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import services

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
# The AMQP 0.9.1 protocol header; a broker answers it with a Connection.Start method frame (type 1).
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


@dataclass
class RabbitMq:
    base_dir: Path
    port: int
    dist_port: int
    epmd_port: int
    service: services.ServiceProcess | None = None

    @property
    def node_name(self) -> str:
        return f"ditto-test-{self.port}@localhost"

    def uri(self, user: str = "guest", password: str = "guest", vhost: str = "") -> str:
        return f"amqp://{user}:{password}@{services.LOOPBACK}:{self.port}/{vhost}"

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            RABBITMQ_NODENAME=self.node_name,
            RABBITMQ_NODE_IP_ADDRESS=services.LOOPBACK,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS=services.LOOPBACK,
            RABBITMQ_CONFIG_FILE=str(self.base_dir / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(self.base_dir / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base_dir / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.base_dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base_dir / "log"),
            HOME=str(self.base_dir),
        )
        return env

    def start(self) -> None:
        self.service = services.start_service(
            "rabbitmq",
            [RABBITMQ_SERVER],
            self.port,
            self.base_dir / "server.log",
            deadline=time.monotonic() + 60.0,
            cwd=self.base_dir,
            env=self.environment(),
            ready=_wait_for_amqp,
        )

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop_epmd(self) -> None:
        marker = f"ERL_EPMD_PORT={self.epmd_port}".encode()
        for pid in _processes_with_environment(marker):
            if _command_name(pid) == "epmd":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)


def _wait_for_amqp(service: services.ServiceProcess, deadline: float) -> None:
    """The port accepts connections a little before the broker speaks AMQP: wait for Connection.Start."""
    while True:
        try:
            with socket.create_connection((services.LOOPBACK, service.port), timeout=2.0) as sock:
                sock.sendall(_AMQP_HEADER)
                if sock.recv(1) == b"\x01":
                    return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise services.ServiceUnavailable(f"rabbitmq does not speak AMQP: {service.log_tail()}")
        try:
            code = service.process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        raise services.ServiceUnavailable(f"rabbitmq exited with {code}: {service.log_tail()}")


def _processes_with_environment(marker: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def start_rabbitmq() -> RabbitMq:
    if not Path(RABBITMQ_SERVER).exists():
        raise services.ServiceUnavailable(
            f"{RABBITMQ_SERVER} not installed (apt-get install rabbitmq-server)"
        )
    base_dir = Path(tempfile.mkdtemp(prefix="rabbitmq-"))
    broker = RabbitMq(base_dir, services.free_port(), services.free_port(), services.free_port())
    (base_dir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {services.LOOPBACK}:{broker.port}\n"
        "loopback_users = none\n"
        # Room for a test machine with little free disk: the default limit would block publishers.
        "disk_free_limit.absolute = 10MB\n"
    )
    (base_dir / "rabbitmq-env.conf").write_text("")
    (base_dir / "enabled_plugins").write_text("[].\n")
    try:
        broker.start()
    except BaseException:
        broker.stop_epmd()
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    return broker


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMq]:
    """A RabbitMQ of this session (user ``guest``/``guest``, vhost ``/``)."""
    try:
        broker = start_rabbitmq()
    except services.ServiceUnavailable as exc:
        services.service_missing(str(exc))
        raise  # unreachable: service_missing skips or fails
    try:
        yield broker
    finally:
        broker.stop()
        broker.stop_epmd()
        shutil.rmtree(broker.base_dir, ignore_errors=True)
