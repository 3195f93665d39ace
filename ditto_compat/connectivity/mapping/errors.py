"""The errors of payload mapping (``connectivity-mapping``): a message that cannot be mapped, and a mapping
definition that cannot be used."""

from __future__ import annotations

from ditto_compat.connectivity.errors import ConnectionConfigurationInvalid
from ditto_compat.errors import DittoError


class MessageMappingFailed(DittoError):
    """Ditto's ``MessageMappingFailedException``: one message failed; the connection goes on with the next."""

    status = 400
    error_code = "connectivity:message.mapping.failed"
    default_message = "The external message could not be mapped."
    default_description = "Check if you are sending the correct content-type/payload combination."


class MappingConfigurationInvalid(ConnectionConfigurationInvalid):
    """A mapping definition with an unknown engine or unusable options (``connection.configuration.invalid``);
    raised when the connection is created, modified or opened."""

    default_message = "The configuration of the payload mapping is invalid."
    default_description = (
        "Check the 'mappingDefinitions' of the connection against the payload mapping documentation."
    )


def mapping_failed(why: str, *, content_type: str | None = None) -> MessageMappingFailed:
    kind = f" with content-type <{content_type}>" if content_type else ""
    return MessageMappingFailed(f"The external message{kind} could not be mapped.", why)
