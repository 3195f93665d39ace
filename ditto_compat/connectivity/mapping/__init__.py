"""Payload mapping (``connectivity-mapping``): the mapper contract (``base``), the built-in mappers, and the
registry that builds them from mapping definitions. Pure but for ``javascript`` (V8)."""
