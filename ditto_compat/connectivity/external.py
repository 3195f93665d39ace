"""The message a broker carries, before inbound mapping and after outbound mapping (Ditto's
``ExternalMessage``): headers, a text or bytes payload, and the address it came from or goes to.

Pure. Header names are case-insensitive as in Ditto; :meth:`ExternalMessage.header` looks them up that way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ExternalMessage:
    headers: dict[str, str] = field(default_factory=dict)
    # Exactly one of ``text`` and ``payload`` is normally set: text when the content type is textual (or the
    # bytes decode as UTF-8), bytes otherwise. Mappers read :attr:`text_payload` / :attr:`bytes_payload`.
    text: str | None = None
    payload: bytes | None = None
    # Inbound: the source address (topic, queue) it arrived on. Outbound: the resolved target address.
    address: str = ""
    # Inbound only: the index of the connection source it arrived on.
    source_index: int = 0
    # Inbound only: the address the connection's metrics count it under when that is not ``address``. Ditto
    # counts an MQTT message under its source's topic filters joined by ";", not under the topic it came on
    # (one series per device topic would make the metrics grow with the devices).
    metrics_address: str | None = None
    # Broker-specific extras a client adapter needs back when publishing (e.g. MQTT qos/retain overrides)
    # or acknowledging; never mapped.
    transport: dict[str, Any] = field(default_factory=dict)

    @property
    def counted_under(self) -> str:
        """Inbound: the address of the connection's metrics that count this message."""
        return self.metrics_address or self.address

    def header(self, name: str) -> str | None:
        if name in self.headers:
            return self.headers[name]
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    @property
    def content_type(self) -> str | None:
        return self.header("content-type")

    @property
    def text_payload(self) -> str | None:
        if self.text is not None:
            return self.text
        if self.payload is None:
            return None
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError:
            return None

    @property
    def bytes_payload(self) -> bytes | None:
        if self.payload is not None:
            return self.payload
        return None if self.text is None else self.text.encode("utf-8")
