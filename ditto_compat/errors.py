"""Ditto's error model (``basic-errors``): every failure is data with a status and a stable error code.

Only the HTTP layer renders these as HTTP responses and only ``protocol/`` renders them as protocol
error envelopes; everything below raises or returns a :class:`DittoError`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DittoError(Exception):
    """A Ditto error: ``{"status", "error", "message", "description"?, "href"?}``."""

    status: ClassVar[int] = 500
    error_code: ClassVar[str] = "internalerror"
    default_message: ClassVar[str] = "An unexpected error occurred."
    default_description: ClassVar[str | None] = None

    def __init__(
        self,
        message: str | None = None,
        description: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.description = description if description is not None else self.default_description
        self.headers = headers or {}
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "error": self.error_code, "message": self.message}
        if self.description:
            body["description"] = self.description
        return body


_IDENTIFIER_HELP = (
    "An Identifier is either 'namespace:name:version' "
    "(each part made of letters, digits, '_', '.' and '-') or a URL."
)


def _error(code: str, status: int, message: str, description: str | None = None) -> type[DittoError]:
    """Build a DittoError subclass; used for the long tail of codes that need no logic of their own."""
    return type(
        "DittoError_" + code.replace(":", "_").replace(".", "_"),
        (DittoError,),
        {
            "error_code": code,
            "status": status,
            "default_message": message,
            "default_description": description,
        },
    )


# --- generic (json / headers / gateway) ---------------------------------------------------------------
class JsonInvalid(DittoError):
    status = 400
    error_code = "json.invalid"
    default_message = "Failed to parse JSON string."
    default_description = (
        "Check if the JSON was valid (e.g. on https://jsonlint.com) and if it was in required format."
    )


class JsonFieldSelectorInvalid(DittoError):
    status = 400
    error_code = "json.fieldselector.invalid"
    default_message = "The field selector is invalid."
    default_description = (
        "Check if you specified the field selector with valid syntax, e.g. 'attributes(a,b)'."
    )


class JsonPointerInvalid(DittoError):
    status = 400
    error_code = "json.pointer.invalid"
    default_message = "The JSON pointer is invalid."


class JsonKeyInvalid(DittoError):
    status = 400
    error_code = "json.key.invalid"
    default_message = "The JSON key is invalid."
    default_description = "JSON keys must not contain slashes or control characters and must not be empty."


class HeaderInvalid(DittoError):
    status = 400
    error_code = "header.invalid"
    default_message = "A header value is invalid."


class TimeoutInvalid(DittoError):
    status = 400
    error_code = "timeout.invalid"
    default_message = "The timeout is invalid."
    default_description = (
        "The timeout must be a positive duration like '42', '42s', '250ms' or '1m', at most 60s."
    )


class DuplicateHeaderField(DittoError):
    status = 400
    error_code = "gateway:duplicate.header.field"
    default_message = "A header field was sent more than once."


class AuthenticationFailed(DittoError):
    status = 401
    error_code = "gateway:authentication.failed"
    default_message = "Unauthorized."
    default_description = "Check if your credentials were correct."


class MethodNotAllowed(DittoError):
    status = 405
    error_code = "gateway:method.notallowed"
    default_message = "The provided HTTP method is not allowed on this resource."


class ResourceNotFound(DittoError):
    status = 404
    error_code = (
        "gateway:resource.notfound"  # not a Ditto code; Ditto answers unknown routes with its own 404
    )
    default_message = "The requested resource could not be found."


class MediaTypeUnsupported(DittoError):
    status = 415
    error_code = "mediatype.unsupported"
    default_message = "The request's media type is not supported."


class RequestEntityTooLarge(DittoError):
    status = 413
    error_code = "request.entity.toolarge"
    default_message = "The request entity is too large."
    default_description = "The request body must not exceed 1 MiB."


class UriTooLong(DittoError):
    status = 414
    error_code = "uri.toolong"
    default_message = "The request URI is too long."


class CommandTimeout(DittoError):
    status = 408
    error_code = "command.timeout"
    default_message = "The command could not be processed within its timeout."


class ServiceUnavailable(DittoError):
    status = 503
    error_code = "service.unavailable"
    default_message = "The service is not available, please try again later."


class InternalError(DittoError):
    status = 500
    error_code = "internalerror"
    default_message = "There was a rare case of an unexpected internal error."


# --- things ---------------------------------------------------------------------------------------------
class ThingIdInvalid(DittoError):
    status = 400
    error_code = "things:id.invalid"
    default_message = "The Thing ID is not valid."
    default_description = (
        "It must conform to the namespaced entity ID notation "
        "(see Ditto documentation on namespaced entity IDs)."
    )


class ThingIdNotSettable(DittoError):
    status = 400
    error_code = "things:id.notsettable"
    default_message = "The Thing ID in the request body is not equal to the Thing ID in the request URL."


class ThingIdNotDeletable(DittoError):
    status = 400
    error_code = "things:id.notdeletable"
    default_message = "The Thing ID of a Thing cannot be deleted."


class PolicyIdNotDeletable(DittoError):
    status = 400
    error_code = "things:policyId.notdeletable"
    default_message = "The Policy ID of a Thing cannot be deleted."


class PolicyIdNotAllowed(DittoError):
    status = 400
    error_code = "things:policyId.notallowed"
    default_message = (
        "The Thing could not be modified as it contained an inline Policy with an ID "
        "or a Policy ID and a Policy."
    )


class InlinePolicyNotAllowed(DittoError):
    status = 400
    error_code = "things:policy.notallowed"
    default_message = "The Thing could not be modified as it contained an inline Policy."


class PolicyConflicting(DittoError):
    status = 400
    error_code = "things:policy.conflicting"
    default_message = "The Thing contained both an inline Policy and a Policy to copy."


class ThingPolicyInvalid(DittoError):
    status = 400
    error_code = "things:policy.invalid"
    default_message = "The inline Policy of the Thing is invalid."


class ThingNotCreatable(DittoError):
    status = 400
    error_code = "things:thing.notcreatable"
    default_message = "The Thing could not be created."


class ThingConflict(DittoError):
    status = 409
    error_code = "things:thing.conflict"
    default_message = "The Thing already exists."


class ThingNotModifiable(DittoError):
    status = 403
    error_code = "things:thing.notmodifiable"
    default_message = (
        "The Thing could not be modified as the requester had insufficient permissions (WRITE is required)."
    )


class ThingNotDeletable(DittoError):
    status = 403
    error_code = "things:thing.notdeletable"
    default_message = (
        "The Thing could not be deleted as the requester had insufficient permissions "
        "(WRITE on root resource is required)."
    )


class PolicyNotModifiable(DittoError):
    status = 403
    error_code = "policies:policy.notmodifiable"
    default_message = (
        "The Policy could not be modified as the requester had insufficient permissions (WRITE is required)."
    )


class ThingTooLarge(DittoError):
    status = 413
    error_code = "things:thing.toolarge"
    default_message = "The size of the Thing exceeds the limit of 100 kB."


class MergeInvalid(DittoError):
    status = 400
    error_code = "things:merge.invalid"
    default_message = "The merge patch could not be applied."


class AttributePointerInvalid(DittoError):
    status = 400
    error_code = "things:attribute.pointerinvalid"
    default_message = "The attribute pointer is invalid."


class FeatureDefinitionEmpty(DittoError):
    status = 400
    error_code = "things:feature.definition.empty"
    default_message = "Feature Definition must not be empty!"


class FeatureDefinitionIdentifierInvalid(DittoError):
    status = 400
    error_code = "things:feature.definition.identifier.invalid"
    default_message = "Feature Definition Identifier is invalid!"
    default_description = _IDENTIFIER_HELP


class ThingDefinitionInvalid(DittoError):
    status = 400
    error_code = "things:definition.identifier.invalid"
    default_message = "Thing Definition is invalid!"
    default_description = _IDENTIFIER_HELP


class ThingPreconditionFailed(DittoError):
    status = 412
    error_code = "things:precondition.failed"
    default_message = "The comparison of precondition header did not match."


class ThingConditionFailed(DittoError):
    status = 412
    error_code = "things:condition.failed"
    default_message = "The specified condition does not match the state of the requested Thing."
    default_description = (
        "Check the condition (an RQL expression) and that you may READ the fields it refers to."
    )


class ThingPreconditionNotModified(DittoError):
    status = 304
    error_code = "things:precondition.notmodified"
    default_message = "The comparison of precondition header 'if-none-match' failed."


class ThingUnavailable(DittoError):
    status = 503
    error_code = "things:thing.unavailable"
    default_message = "The Thing is not available, please try again later."


# --- policies (stored with things from the start; the Policies API comes later) -------------------------
class PolicyIdInvalid(DittoError):
    status = 400
    error_code = "policies:id.invalid"
    default_message = "The Policy ID is not valid."


class PolicyNotFound(DittoError):
    status = 404
    error_code = "policies:policy.notfound"
    default_message = "The Policy could not be found or requester had insufficient permissions to access it."


class PolicyResourceInvalid(DittoError):
    status = 400
    error_code = "policies:resource.invalid"
    default_message = "The resource is invalid."
    default_description = "A resource is 'thing:', 'policy:' or 'message:' followed by a JSON pointer."


class PolicyConflict(DittoError):
    status = 409
    error_code = "policies:policy.conflict"
    default_message = "The Policy already exists."


class PolicyTooLarge(DittoError):
    status = 413
    error_code = "policies:policy.toolarge"
    default_message = "The size of the Policy exceeds the limit of 100 kB."


def error_from_json(body: dict[str, Any]) -> DittoError:
    """Rebuild a DittoError from its JSON form (used for errors that crossed a process or protocol boundary)."""
    cls = _error(str(body.get("error", "internalerror")), int(body.get("status", 500)), "")
    return cls(str(body.get("message", "")), body.get("description"))


# --- search -----------------------------------------------------------------------------------------------
class SearchOptionInvalid(DittoError):
    status = 400
    error_code = "thing-search:search.option.invalid"
    default_message = "The search option is invalid."


# === rql (ditto_compat/rql/*) ====================================================================================
class RqlExpressionInvalid(DittoError):
    """Ditto's ``InvalidRqlExpressionException``: a filter or condition that does not parse, or names a field
    that cannot be searched. The message carries the parser's position (``(line 1, column 5)``)."""

    status = 400
    error_code = "rql.expression.invalid"
    default_message = "The given RQL expression was invalid"
    default_description = (
        "Ensure that all opening parentheses have also closing ones and that the RQL expression is valid."
    )


# === end of the rql block =======================================================================================


# === policies API (ditto_compat/domain/policy_*.py, service/policies.py, api/policies.py) ==================
# Codes, statuses and messages as Ditto's PolicyException implementations and the protocol examples
# (policies/generated/exceptions) have them.
class PolicyEntryNotFound(DittoError):
    status = 404
    error_code = "policies:entry.notfound"
    default_message = (
        "The PolicyEntry could not be found or requester had insufficient permissions to access it."
    )


class PolicyEntryNotModifiable(DittoError):
    status = 403
    error_code = "policies:entry.notmodifiable"
    default_message = "The PolicyEntry could not be modified as the requester had insufficient permissions."


class SubjectsNotFound(DittoError):
    status = 404
    error_code = "policies:subjects.notfound"
    default_message = (
        "The Subjects could not be found or requester had insufficient permissions to access them."
    )


class SubjectsNotModifiable(DittoError):
    status = 403
    error_code = "policies:subjects.notmodifiable"
    default_message = "The Subjects could not be modified as the requester had insufficient permissions."


class SubjectNotFound(DittoError):
    status = 404
    error_code = "policies:subject.notfound"
    default_message = "The Subject could not be found or requester had insufficient permissions to access it."


class SubjectNotModifiable(DittoError):
    status = 403
    error_code = "policies:subject.notmodifiable"
    default_message = "The Subject could not be modified as the requester had insufficient permissions."


class PolicyResourcesNotFound(DittoError):
    status = 404
    error_code = "policies:resources.notfound"
    default_message = (
        "The Resources could not be found or requester had insufficient permissions to access them."
    )


class PolicyResourcesNotModifiable(DittoError):
    status = 403
    error_code = "policies:resources.notmodifiable"
    default_message = "The Resources could not be modified as the requester had insufficient permissions."


class PolicyEntryResourceNotFound(DittoError):
    status = 404
    error_code = "policies:resource.notfound"
    default_message = (
        "The Resource could not be found or requester had insufficient permissions to access it."
    )


class PolicyEntryResourceNotModifiable(DittoError):
    status = 403
    error_code = "policies:resource.notmodifiable"
    default_message = "The Resource could not be modified as the requester had insufficient permissions."


class PolicyImportsNotFound(DittoError):
    status = 404
    error_code = "policies:imports.notfound"
    default_message = (
        "The imports could not be found or requester had insufficient permissions to access them."
    )


class PolicyImportsNotModifiable(DittoError):
    status = 403
    error_code = "policies:imports.notmodifiable"
    default_message = "The Imports could not be modified as the requester had insufficient permissions."


class PolicyImportNotFound(DittoError):
    status = 404
    error_code = "policies:import.notfound"
    default_message = "The import could not be found or requester had insufficient permissions to access it."


class PolicyImportNotModifiable(DittoError):
    status = 403
    error_code = "policies:import.notmodifiable"
    default_message = "The Import could not be modified as the requester had insufficient permissions."


class PolicyModificationInvalid(DittoError):
    status = 403
    error_code = "policies:policy.modificationinvalid"
    default_message = "The Policy could not be modified as the resulting Policy would be invalid."
    default_description = (
        "There must always be at least one PolicyEntry with 'WRITE' permissions on resource 'policy:/'."
    )


class PolicyEntryModificationInvalid(DittoError):
    status = 403
    error_code = "policies:entry.modificationinvalid"
    default_message = "The PolicyEntry could not be modified as the resulting Policy would be invalid."
    default_description = (
        "There must always be at least one PolicyEntry with 'WRITE' permissions on resource 'policy:/'."
    )


class PolicyEntryInvalid(DittoError):
    status = 400
    error_code = "policies:entry.invalid"
    default_message = "The Policy Entry is invalid."
    default_description = "Policy entry does not contain any known permission like 'READ' or 'WRITE'"


class PolicyLabelInvalid(DittoError):
    status = 400
    error_code = "policies:label.invalid"
    default_message = "The Label is not valid!"
    default_description = "It must not start with the blocklisted 'imported' or 'nsimported-' prefix."


class SubjectIdInvalid(DittoError):
    status = 400
    error_code = "policies:subjectid.invalid"
    default_message = "The Subject ID is not valid!"
    default_description = (
        "It must contain an issuer as prefix separated by a colon ':' from the actual subject"
    )


class SubjectExpiryInvalid(DittoError):
    status = 400
    error_code = "policies:subjectexpiry.invalid"
    default_message = "The Subject expiry timestamp is not valid."
    default_description = "It must be provided as ISO-8601 formatted char sequence."


class PolicyImportInvalid(DittoError):
    status = 400
    error_code = "policies:import.invalid"
    default_message = "The Policy Import is invalid."
    default_description = "The Policy Import references the policy where it is defined."


class PolicyImportsTooLarge(DittoError):
    status = 400
    error_code = "policies:imports.toolarge"
    default_message = "The number of policy imports exceeds the limit of 10."
    default_description = "Reduce the number of policy imports."


class PolicyIdNotSettable(DittoError):
    status = 400
    error_code = "policies:id.notsettable"
    default_message = "The Policy ID in the request body is not equal to the Policy ID in the request URL."
    default_description = (
        "Either delete the Policy ID from the request body or use the same Policy ID as in the request URL."
    )


class PolicyPreconditionFailed(DittoError):
    status = 412
    error_code = "policies:precondition.failed"
    default_message = "The comparison of precondition header did not match."


class PolicyPreconditionNotModified(DittoError):
    status = 304
    error_code = "policies:precondition.notmodified"
    default_message = "The comparison of precondition header 'if-none-match' failed."


class PolicyEntryReferenceConflict(DittoError):
    status = 409
    error_code = "policies:entry.referenceconflict"
    default_message = "The entry cannot be removed because a local reference still points to it."
    default_description = "Remove the local entry references first before deleting the referenced entry."


class PolicyImportReferenceConflict(DittoError):
    status = 409
    error_code = "policies:import.referenceconflict"
    default_message = "The import cannot be removed because entry references still point to it."
    default_description = "Remove the entry references first before deleting the import."


class PolicyActionFailed(DittoError):
    status = 400
    error_code = "policies:action.failed"
    default_message = "Failed to execute action."
    default_description = "Policy action is only possible with JWT authentication."


class PolicyUnavailable(DittoError):
    status = 503
    error_code = "policies:policy.unavailable"
    default_message = "The Policy is not available, please try again later."
    default_description = "The requested Policy is temporarily not available."


class PlaceholderNotResolvable(DittoError):
    status = 400
    error_code = "placeholder:placeholder.notresolvable"
    default_message = "The placeholder is unknown."
    default_description = "Please use one of the supported placeholders: 'request:subjectId'."


class PolicyViewInvalid(DittoError):
    status = 400
    error_code = "policies:view.invalid"
    default_message = "The 'policy-view' parameter has an invalid value."
    default_description = "Use 'original' (or omit) for the stored policy, or 'resolved' for the merged view."


class JsonFieldMissing(DittoError):
    """Ditto's ``JsonMissingFieldException`` as a ``DittoJsonException`` (e.g. a subject without ``type``)."""

    status = 400
    error_code = "json.field.missing"
    default_message = "A mandatory JSON field is missing."


# === end of the policies API block ==============================================================================


# === Ditto Protocol (ditto_compat/protocol/*) =====================================================================
# Ditto's protocol adapter exceptions (ProtocolAdapterException: prefix "things.protocol.adapter:"), used for every
# group, as Ditto does. A malformed envelope answers the generic json.* codes above.
class UnknownTopicPath(DittoError):
    """Ditto's ``UnknownTopicPathException``: a topic that does not parse or that names no known signal."""

    status = 400
    error_code = "things.protocol.adapter:unknown.topicpath"
    default_message = "The topic path is not supported."
    default_description = "Check if the topic path is correct."


class UnknownPath(DittoError):
    """Ditto's ``UnknownPathException``: a valid topic with a ``path`` that addresses no resource of it."""

    status = 400
    error_code = "things.protocol.adapter:unknown.path"
    default_message = "The path does not correspond to any known command, response or event."
    default_description = "Check if the path is correct."


# === end of the Ditto Protocol block ============================================================================
