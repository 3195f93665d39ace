"""Policies as stored with Things (``basic-policy``): the default policy, inline policies and their events.

The Policies API and enforcement build on this; here is what Thing creation needs.
"""

from __future__ import annotations

from typing import Any

from ditto_compat.domain.auth import AuthContext
from ditto_compat.errors import JsonInvalid, PolicyTooLarge
from ditto_compat.model.jsonio import dumps

POLICY_SIZE_LIMIT = 100 * 1024
REQUEST_SUBJECT_PLACEHOLDER = "{{ request:subjectId }}"
_PLACEHOLDER_VARIANTS = (
    "{{ request:subjectId }}",
    "{{request:subjectId}}",
    "{{ request:subjectId}}",
    "{{request:subjectId }}",
)


def default_policy(policy_id: str, auth: AuthContext) -> dict[str, Any]:
    """Ditto's implicit policy for a Thing created without one: the creator may READ and WRITE everything."""
    grant = {"grant": ["READ", "WRITE"], "revoke": []}
    return {
        "policyId": policy_id,
        "entries": {
            "DEFAULT": {
                "subjects": {auth.default_subject: {"type": "generated"}},
                "resources": {"thing:/": dict(grant), "policy:/": dict(grant), "message:/": dict(grant)},
            }
        },
    }


def resolve_request_placeholders(value: Any, auth: AuthContext) -> Any:
    """Replace ``{{ request:subjectId }}`` (in keys and strings) by the caller's default subject."""
    if isinstance(value, dict):
        return {
            resolve_request_placeholders(k, auth): resolve_request_placeholders(v, auth)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [resolve_request_placeholders(v, auth) for v in value]
    if isinstance(value, str) and "request:subjectId" in value:
        for variant in _PLACEHOLDER_VARIANTS:
            value = value.replace(variant, auth.default_subject)
        return value
    return value


def inline_policy(policy_id: str, body: Any, auth: AuthContext) -> dict[str, Any]:
    """An inline ``_policy`` made into a stored policy with the given id."""
    if not isinstance(body, dict):
        raise JsonInvalid("The inline policy '_policy' must be a JSON object.")
    resolved = resolve_request_placeholders(body, auth)
    policy = {
        "policyId": policy_id,
        **{k: v for k, v in resolved.items() if k != "policyId" and not k.startswith("_")},
    }
    if not isinstance(policy.get("entries", {}), dict):
        raise JsonInvalid("The 'entries' of a policy must be a JSON object.")
    check_policy_size(policy)
    return policy


def check_policy_size(policy: dict[str, Any]) -> None:
    size = len(dumps(policy))
    if size > POLICY_SIZE_LIMIT:
        raise PolicyTooLarge(
            f"The size of '{size // 1024}' kB exceeds the maximal allowed Policy size of "
            f"'{POLICY_SIZE_LIMIT // 1024}' kB."
        )


def policy_event(policy_id: str, action: str, value: Any, revision: int, now: str) -> dict[str, Any]:
    """A journal entry for a policy change, in the same shape as Thing events."""
    verb = {"created": "Created", "modified": "Modified", "deleted": "Deleted"}[action]
    body: dict[str, Any] = {
        "type": f"policies.events:policy{verb}",
        "policyId": policy_id,
        "action": action,
        "path": "/",
        "revision": revision,
        "timestamp": now,
    }
    if value is not None:
        body["value"] = value
    return body
