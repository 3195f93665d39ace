"""The payload mapper contract (``connectivity-mapping``): a mapper turns one broker message into zero or more
Ditto Protocol envelopes (incoming), and one envelope into zero or more broker messages (outgoing).

Mapping errors are :class:`~ditto_compat.errors.DittoError` subclasses (``connectivity:message.mapping.failed``),
so that the inbound path logs them as the message's failure and goes on with the next message.
"""

from __future__ import annotations

from typing import Protocol

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.protocol.envelope import Envelope


class MessageMapper(Protocol):
    def map_incoming(self, message: ExternalMessage) -> list[Envelope]: ...

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]: ...
