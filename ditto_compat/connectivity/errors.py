"""The ``connectivity:*`` errors of the connections API (``connectivity-manage-connections``), with the codes,
statuses and texts of Ditto's ``ConnectivityException`` classes (``connectivity/model/.../exceptions``)."""

from __future__ import annotations

from ditto_compat.errors import DittoError

CONNECTION_ID_REGEX = "[a-zA-Z0-9-_:]{1,100}"


class ConnectionNotAccessible(DittoError):
    status = 404
    error_code = "connectivity:connection.notfound"
    default_message = (
        "The Connection could not be found or requester had insufficient permissions to access it."
    )
    default_description = (
        "Check if the ID of your requested Connection was correct and you have sufficient permissions."
    )

    @classmethod
    def of(cls, connection_id: str) -> ConnectionNotAccessible:
        return cls(
            f"The Connection with ID '{connection_id}' could not be found or requester had insufficient "
            "permissions to access it."
        )


class ConnectionHistoryNotAccessible(DittoError):
    status = 404
    error_code = "connectivity:connection.history.notfound"
    default_message = "The Connection at the requested revision or timestamp could not be found."
    default_description = (
        "Check if the ID of your requested Connection was correct, you have sufficient permissions and ensure "
        "that the asked for revision/timestamp does not exceed the history retention (journal_retention)."
    )


class ConnectionConflict(DittoError):
    status = 409
    error_code = "connectivity:connection.conflict"
    default_message = "The Connection was already created."
    default_description = "If you need to update it, remove it first before creating it again."


class ConnectionConfigurationInvalid(DittoError):
    status = 400
    error_code = "connectivity:connection.configuration.invalid"
    default_message = "The configuration of the Connection is invalid."
    default_description = "Make sure all required properties are set and valid in the configuration."


class ConnectionIdInvalid(DittoError):
    status = 400
    error_code = "connectivity:connection.id.invalid"
    default_message = "The Connection ID is not valid."
    default_description = f"It must be conform to the regular expression: <{CONNECTION_ID_REGEX}>."

    @classmethod
    def of(cls, connection_id: str) -> ConnectionIdInvalid:
        return cls(f"The Connection ID '{connection_id}' is not valid.")


class ConnectionIdNotSettable(DittoError):
    status = 400
    error_code = "connectivity:connection.id.notsettable"
    default_message = "The Connection ID in the request body is not allowed to be set."
    default_description = (
        "The ID of a Connection created with POST is generated; to choose it, use PUT on "
        "/connections/<connectionId> with the same ID in the body, or none."
    )


class ConnectivityCommandInvalid(DittoError):
    status = 400
    error_code = "connectivity:command.invalid"
    default_message = "The command is invalid or unknown."
    default_description = (
        "Choose from one of the valid commands, e.g. <connectivity.commands:openConnection>."
    )

    @classmethod
    def of(cls, command: str) -> ConnectivityCommandInvalid:
        return cls(f"The command <{command}> is invalid or unknown.")


class ConnectionFailed(DittoError):
    """Ditto answers an ``openConnection`` (and a dry run) whose broker cannot be reached with 504."""

    status = 504
    error_code = "connectivity:connection.failed"
    default_message = "The Connection failed to connect."
    default_description = (
        "The requested Connection could not be connected due to an internal failure of the underlying driver."
    )

    @classmethod
    def of(cls, connection_id: str, description: str | None = None) -> ConnectionFailed:
        return cls(f"The Connection with ID '{connection_id}' failed to connect.", description)


class ConnectionTypeUnsupported(DittoError):
    """A connection type this server accepts in a definition but has no client for (``amqp-10``, ``hono``).
    Ditto runs every type, so it has no such error; the code follows its naming."""

    status = 400
    error_code = "connectivity:connection.type.unsupported"
    default_message = "The connection type is not supported by this server."

    @classmethod
    def of(cls, connection_type: str) -> ConnectionTypeUnsupported:
        return cls(
            f"Connections of type '{connection_type}' cannot be opened by this server.",
            "Supported types are amqp-091, mqtt, mqtt-5, kafka and http-push.",
        )


class ConnectionUnavailable(DittoError):
    status = 503
    error_code = "connectivity:connection.unavailable"
    default_message = "The Connection is not available, please try again later."
    default_description = (
        "The requested Connection is temporarily not available, please retry the performed action in order "
        "to improve resiliency."
    )
