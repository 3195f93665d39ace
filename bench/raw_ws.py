"""A minimal RFC 6455 WebSocket client on ``asyncio.Protocol``, for benchmarks that must cost less than the server.

Why: a benchmark client that shares a 2-core machine with the server it measures must spend far less CPU per
frame than the server, or it measures itself. The ``websockets`` asyncio client hands every frame through its
Assembler, a reader task and an async iterator; at 10,000 frames/s over 1,000 sessions it took as much CPU as
the server, and when it fell behind, its backlog showed up as seconds of "server" latency. Here a frame is parsed
in ``data_received`` and handed to a callback synchronously: no task, no queue, no await per frame.

What it does: the client handshake (``GET`` with ``Upgrade``, a random ``Sec-WebSocket-Key`` and any extra
headers such as ``Authorization``; verifies ``101``, ``Upgrade``, ``Connection`` and ``Sec-WebSocket-Accept``);
masked client frames (text, pong, close); server frames (unmasked; 7, 16 and 64-bit lengths; text and binary
messages, fragmented with continuation frames or not; ping answered by a pong with its payload; close answered
by a close echoing its code). It offers no extension and no subprotocol, and fails a handshake whose response
selects one, so a frame with an RSV bit set is a protocol error.

What it does not do: TLS, proxies, redirects, sending fragmented messages, UTF-8 validation of text messages
(the caller's JSON parser validates them), limits other than ``MAX_MESSAGE``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import cast

ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_RESPONSE_HEAD = 64 * 1024
MAX_MESSAGE = 64 * 1024 * 1024
CLOSE_TIMEOUT_S = 10.0  # after the close handshake, the server closes TCP; abort if it does not
CLOSE_NORMAL, CLOSE_NO_STATUS, CLOSE_ABNORMAL = 1000, 1005, 1006
CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG = 1002, 1009

# a complete message: payload, True for text (False for binary), clock reading when its last bytes arrived
MessageHandler = Callable[[bytes, bool, int], None]


class HandshakeError(Exception):
    """The server did not accept the upgrade as RFC 6455 requires."""


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` repeated (client frames are masked); one big-int XOR, no loop."""
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + mask(payload, key)


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + ACCEPT_GUID).digest()).decode("ascii")


class RawWebSocket(asyncio.Protocol):
    """One client connection. Open it with :meth:`connect`; read the first messages with :meth:`recv`, then hand
    the rest to a callback with :meth:`set_handler`. ``closed`` resolves when the TCP connection is gone;
    ``close_code`` is the code of the server's close frame (1005 if it had none), or 1006 if the connection
    ended without one, or 1002/1009 if this client failed it."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        headers: Iterable[tuple[str, str]] = (),
        *,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._host, self._port, self._path = host, port, path
        self._extra_headers = list(headers)
        self._clock = clock
        self._key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.response_headers: dict[str, str] = {}  # of the 101 response, names in lower case
        self.close_code: int | None = None
        self.close_reason = ""
        self.error: str | None = None  # why this client failed the connection, if it did
        self._upgraded = False
        self._closing = False  # a close frame was received or this client failed the connection
        self._close_sent = False
        # unparsed input: chunks joined only once ``_need`` bytes are there (no quadratic re-copying)
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 0
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self._fragments_size = 0
        self._handler: MessageHandler | None = None
        self._pending: deque[tuple[bytes, bool, int]] = deque()
        self._waiter: asyncio.Future[None] | None = None

    # -- opening -------------------------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str = "/",
        headers: Iterable[tuple[str, str]] = (),
        *,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> RawWebSocket:
        """Connects and completes the handshake; bound it with ``asyncio.timeout`` (a cancelled handshake
        aborts the connection)."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: cls(host, port, path, headers, clock=clock), host, port
        )
        try:
            await protocol.handshake
        except BaseException:
            protocol.abort()
            raise
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a TCP transport (uvloop's is not a subclass of asyncio.Transport, so no isinstance check)
        self._transport = cast(asyncio.Transport, transport)
        lines = [
            f"GET {self._path} HTTP/1.1",
            f"Host: {self._host}:{self._port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in self._extra_headers),
        ]
        self._transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _read_response(self, data: bytes) -> bytes | None:
        """Parses the handshake response once complete; returns the bytes after it (frames), None if incomplete."""
        self._chunks.append(data)
        buffered = b"".join(self._chunks)
        end = buffered.find(b"\r\n\r\n")
        if end < 0:
            if len(buffered) > MAX_RESPONSE_HEAD:
                self._fail_handshake("response head too long")
            self._chunks = [buffered]
            return None
        self._chunks = []
        head, rest = buffered[:end].decode("latin-1"), buffered[end + 4 :]
        status_line, *header_lines = head.split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                name = name.strip().lower()
                headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
        self.response_headers = headers
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or parts[1] != "101":
            self._fail_handshake(f"{status_line!r}: {rest[:300]!r}")
        elif headers.get("upgrade", "").lower() != "websocket":
            self._fail_handshake(f"Upgrade: {headers.get('upgrade')!r}")
        elif "upgrade" not in (token.strip().lower() for token in headers.get("connection", "").split(",")):
            self._fail_handshake(f"Connection: {headers.get('connection')!r}")
        elif headers.get("sec-websocket-accept") != accept_value(self._key):
            self._fail_handshake(f"Sec-WebSocket-Accept: {headers.get('sec-websocket-accept')!r}")
        elif "sec-websocket-extensions" in headers:
            self._fail_handshake(f"extension not offered: {headers['sec-websocket-extensions']!r}")
        elif "sec-websocket-protocol" in headers:
            self._fail_handshake(f"subprotocol not offered: {headers['sec-websocket-protocol']!r}")
        else:
            self._upgraded = True
            if not self.handshake.done():
                self.handshake.set_result(None)
            return rest
        return None

    def _fail_handshake(self, why: str) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeError(why))
        self.abort()

    # -- receiving -----------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        now = (
            self._clock()
        )  # every frame of this chunk arrived now, however long parsing the earlier ones takes
        if not self._upgraded:
            rest = self._read_response(data)
            if not rest:
                return
            data = rest
        if self._closing:
            return
        if self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            data = b"".join(self._chunks)
            self._chunks = []
        self._parse(data, now)

    def _parse(self, buf: bytes, now: int) -> None:
        pos, end = 0, len(buf)
        while end - pos >= 2 and not self._closing:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                start = pos + 4
                if start > end:
                    break
                length = int.from_bytes(buf[pos + 2 : start], "big")
            elif length == 127:
                start = pos + 10
                if start > end:
                    break
                length = int.from_bytes(buf[pos + 2 : start], "big")
            if b1 & 0x80:
                self._fail(CLOSE_PROTOCOL_ERROR, "masked server frame")
                return
            if b0 & 0x70:
                self._fail(CLOSE_PROTOCOL_ERROR, "RSV bit set without a negotiated extension")
                return
            if length > MAX_MESSAGE:
                self._fail(CLOSE_TOO_BIG, f"frame of {length} bytes")
                return
            stop = start + length
            if stop > end:
                break
            self._frame(b0 & 0x80, b0 & 0x0F, buf[start:stop], now)
            pos = stop
        if pos < end and not self._closing:
            rest = buf[pos:]
            self._chunks = [rest]
            self._have = len(rest)
            self._need = self._frame_size(rest)
        else:
            self._have = self._need = 0

    @staticmethod
    def _frame_size(buf: bytes) -> int:
        """Bytes needed before the partial frame at the start of ``buf`` can be parsed further."""
        if len(buf) < 2:
            return 2
        length = buf[1] & 0x7F
        if length < 126:
            return 2 + length
        head = 4 if length == 126 else 10
        if len(buf) < head:
            return head
        return head + int.from_bytes(buf[2:head], "big")

    def _frame(self, fin: int, opcode: int, payload: bytes, now: int) -> None:
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125:
                self._fail(CLOSE_PROTOCOL_ERROR, "fragmented or long control frame")
            elif opcode == OP_PING:
                self._send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self._close_frame(payload)
            elif opcode != OP_PONG:
                self._fail(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
            return
        if opcode == OP_CONTINUATION:
            fragments = self._fragments
            if fragments is None:
                self._fail(CLOSE_PROTOCOL_ERROR, "continuation without a message")
                return
            fragments.append(payload)
            self._fragments_size += len(payload)
            if self._fragments_size > MAX_MESSAGE:
                self._fail(CLOSE_TOO_BIG, f"message of more than {self._fragments_size} bytes")
            elif fin:
                self._fragments = None
                self._deliver(b"".join(fragments), self._fragments_text, now)
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                self._fail(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            elif fin:
                self._deliver(payload, opcode == OP_TEXT, now)
            else:
                self._fragments = [payload]
                self._fragments_text = opcode == OP_TEXT
                self._fragments_size = len(payload)
        else:
            self._fail(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")

    def _deliver(self, payload: bytes, text: bool, now: int) -> None:
        handler = self._handler
        if handler is not None:
            handler(payload, text, now)
            return
        self._pending.append((payload, text, now))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close_frame(self, payload: bytes) -> None:
        if len(payload) == 1:
            self._fail(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
            return
        self._closing = True
        if self.close_code is None:
            if payload:
                self.close_code = int.from_bytes(payload[:2], "big")
                self.close_reason = payload[2:].decode("utf-8", "replace")
            else:
                self.close_code = CLOSE_NO_STATUS
        if not self._close_sent:
            self._send(OP_CLOSE, payload[:2])
            self._close_sent = True
        self._abort_later()  # the server closes TCP now (RFC 6455 7.1.1)

    def _fail(self, code: int, why: str) -> None:
        """_Fail the WebSocket Connection_: send a close frame with ``code`` and drop the TCP connection."""
        self.error = why
        self._closing = True
        if self.close_code is None:
            self.close_code = code
        if not self._close_sent:
            self._send(OP_CLOSE, code.to_bytes(2, "big"))
            self._close_sent = True
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeError(f"connection lost during the handshake: {exc!r}"))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(f"connection closed ({self.close_code})"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- API -----------------------------------------------------------------------------------------------

    async def recv(self) -> tuple[bytes, bool]:
        """The next message (payload, is text) not yet handed to a handler, for the first frames of a session;
        bound it with ``asyncio.timeout``."""
        if not self._pending:
            if self.closed.done():
                raise ConnectionError(f"connection closed ({self.close_code})")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        payload, text, _ = self._pending.popleft()
        return payload, text

    def set_handler(self, handler: MessageHandler) -> None:
        """From now on every message goes to ``handler``, synchronously; the ones received meanwhile first."""
        while self._pending:
            handler(*self._pending.popleft())
        self._handler = handler

    def send_text(self, text: str) -> None:
        if not self._upgraded or self._close_sent:
            raise ConnectionError("not open")
        self._send(OP_TEXT, text.encode("utf-8"))

    def close(self, code: int = CLOSE_NORMAL) -> None:
        """Starts the close handshake; ``closed`` resolves once the server has closed the TCP connection (or
        after ``CLOSE_TIMEOUT_S``, when this client aborts it)."""
        if not self._close_sent and self._upgraded and not self.closed.done():
            self._send(OP_CLOSE, code.to_bytes(2, "big"))
            self._close_sent = True
        self._abort_later()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _send(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(encode_frame(opcode, payload))

    def _abort_later(self) -> None:
        if not self.closed.done():
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, self.abort)
