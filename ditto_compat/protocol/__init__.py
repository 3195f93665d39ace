"""The Ditto Protocol (``protocol-specification``) as pure data: envelopes and topics in and out, Thing and Policy
commands parsed from envelopes, responses, events and errors rendered as envelopes.

No I/O here: the WebSocket endpoint (and any connection) reads frames, calls these functions and writes what they
return. See ``envelope.py`` for the envelope and topic, ``things.py`` and ``policies.py`` for the signals.
"""
