"""paho-mqtt's client with buffered socket reads.

paho reads every incoming packet with at least three ``recv`` calls (the command byte, the remaining length byte
by byte, then the body), and its network loop handles one packet per ``select``. For a connection that ingests
thousands of QoS 1 messages a second, that is four system calls and a loop round per message on paho's thread,
all under the GIL the command path needs: it was about a third of the server's CPU during MQTT ingestion.

:class:`BufferedPahoClient` fills a buffer with one ``recv`` of up to :data:`RECV_SIZE` bytes and serves paho's
small reads from it, and its ``loop_read`` goes on while whole packets are buffered (the socket would not wake
``select`` for bytes already read). It overrides paho's private ``_sock_recv`` and ``_sock_close`` (paho 2.x);
tests/contract/brokers run it against a real Mosquitto, including reconnects.
"""

from __future__ import annotations

from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

RECV_SIZE: Final = 65_536
# loop_read rounds over buffered data per call, so that paho's thread also gets to its writes and keepalive
MAX_BUFFERED_PACKETS: Final = 10_000


class BufferedPahoClient(paho.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_offset = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_offset >= len(self._read_buffer):
            data = super()._sock_recv(RECV_SIZE)  # raises BlockingIOError when nothing is there
            if not data:
                return data  # the broker closed the connection
            self._read_buffer, self._read_offset = data, 0
        start = self._read_offset
        self._read_offset = min(start + bufsize, len(self._read_buffer))
        return self._read_buffer[start : self._read_offset]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(MAX_BUFFERED_PACKETS):
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is None or not self._buffered():
                break
            rc = super().loop_read(1)
        return rc

    def _sock_close(self) -> None:
        # what is buffered belongs to the closed connection; the next one starts afresh
        self._read_buffer, self._read_offset = b"", 0
        super()._sock_close()

    def _buffered(self) -> int:
        return len(self._read_buffer) - self._read_offset
