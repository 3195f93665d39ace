"""The ``Ditto`` mapper (``connectivity-mapping`` "Ditto mapper"), the default of every source and target: the
payload is a Ditto Protocol message, inbound and outbound.

Inbound, the envelope keeps the headers its payload carries. The external message's own headers are not copied
into it: as in Ditto, only the source's ``headerMapping`` turns external headers into Ditto headers, and the
inbound path applies its result on top of the mapped envelope's headers (so a mapped header wins over one of
the payload). Outbound, the text is the envelope's JSON and the external headers are the Ditto headers plus
``content-type: application/vnd.eclipse.ditto+json``; the target's ``headerMapping`` is applied afterwards by
the outbound path.
"""

from __future__ import annotations

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.common import envelope_from_payload, envelope_to_message
from ditto_compat.protocol.envelope import Envelope


class DittoMapper:
    alias = "Ditto"

    def map_incoming(self, message: ExternalMessage) -> list[Envelope]:
        return [envelope_from_payload(message)]

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]:
        return [envelope_to_message(envelope)]
