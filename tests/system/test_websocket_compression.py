"""permessage-deflate on ``/ws/2``: declined by default, as Ditto (Akka HTTP) never negotiates it, and accepted
with ``--ws-compression``. A client that offers it works either way."""

from __future__ import annotations

from pathlib import Path

from websockets.asyncio.client import connect

from tests.live_server import LiveServer
from tests.system.conftest import ServerFactory
from tests.system.realtime import ALICE, FRAME_TIMEOUT_S, receive


async def negotiated(server: LiveServer) -> str | None:
    """What the server answered to a client offering permessage-deflate; the session works in any case."""
    url = server.base_url.replace("http://", "ws://") + "/ws/2"
    async with connect(
        url, additional_headers=ALICE, compression="deflate", open_timeout=FRAME_TIMEOUT_S
    ) as ws:
        await ws.send("START-SEND-EVENTS")
        assert await receive(ws) == "START-SEND-EVENTS:ACK"
        assert ws.response is not None
        return ws.response.headers.get("Sec-WebSocket-Extensions")


async def test_compression_is_declined_unless_enabled(server_factory: ServerFactory, tmp_path: Path) -> None:
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\n")
    plain = server_factory(args=["--htpasswd", str(users)])
    assert await negotiated(plain) is None
    # its own data directory: one server owns a SQLite file
    compressing = server_factory(
        tmp_path / "compressing", args=["--htpasswd", str(users), "--ws-compression"]
    )
    extensions = await negotiated(compressing)
    assert extensions is not None and extensions.startswith("permessage-deflate")
