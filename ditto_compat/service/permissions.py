"""``POST /api/2/checkPermissions`` (``basic-auth-checkpermissions``): may the caller do X on Y?

Each check names a resource (``thing:/…``, ``message:/…`` with a Thing id, ``policy:/…`` with a Policy id) and
permissions; it is answered with the unrestricted evaluation, as Ditto's ``PolicyCheckPermissionsStrategy``.
An entity the caller cannot see, or that does not exist, answers ``false``.
"""

from __future__ import annotations

from typing import Any

from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.enforcer import EXECUTE, READ, WRITE, Enforcer
from ditto_compat.errors import JsonInvalid, PolicyResourceInvalid
from ditto_compat.model.ids import check_policy_id, check_thing_id, namespace_of
from ditto_compat.model.pointer import parse_pointer
from ditto_compat.service.dispatcher import Dispatcher

PERMISSIONS = frozenset({READ, WRITE, EXECUTE})
RESOURCE_TYPES = ("thing", "message", "policy")


def _parse_check(name: str, check: Any) -> tuple[str, str, tuple[str, ...]]:
    if not isinstance(check, dict):
        raise JsonInvalid(f"The permission check '{name}' must be a JSON object.")
    resource, entity_id, permissions = (
        check.get("resource"),
        check.get("entityId"),
        check.get("hasPermissions"),
    )
    if not isinstance(resource, str) or ":" not in resource:
        raise PolicyResourceInvalid(f"The resource of the permission check '{name}' is invalid.")
    kind, _, path = resource.partition(":")
    if kind not in RESOURCE_TYPES:
        raise PolicyResourceInvalid(
            f"The resource type '{kind}' of the permission check '{name}' is invalid.",
            "Use one of 'thing:', 'message:' or 'policy:'.",
        )
    parse_pointer(path)
    if not isinstance(entity_id, str):
        raise JsonInvalid(f"The 'entityId' of the permission check '{name}' must be a JSON string.")
    if kind == "policy":
        check_policy_id(entity_id)
    else:
        check_thing_id(entity_id)
    if (
        not isinstance(permissions, list)
        or not permissions
        or not all(isinstance(p, str) and p in PERMISSIONS for p in permissions)
    ):
        raise JsonInvalid(
            f"The 'hasPermissions' of the permission check '{name}' must list READ, WRITE or EXECUTE."
        )
    return resource, entity_id, tuple(permissions)


async def check_permissions(dispatcher: Dispatcher, body: Any, auth: AuthContext) -> dict[str, bool]:
    if not isinstance(body, dict):
        raise JsonInvalid("The permission checks must be a JSON object.")
    checks = {name: _parse_check(name, check) for name, check in body.items()}
    enforcers: dict[tuple[str, str], Enforcer | None] = {}
    result: dict[str, bool] = {}
    for name, (resource, entity_id, permissions) in checks.items():
        kind = "policy" if resource.startswith("policy:") else "thing"
        key = (kind, entity_id)
        if key not in enforcers:
            enforcers[key] = await _enforcer(dispatcher, kind, entity_id)
        enforcer = enforcers[key]
        result[name] = enforcer is not None and enforcer.has_unrestricted(
            auth.subjects, resource, permissions
        )
    return result


async def _enforcer(dispatcher: Dispatcher, kind: str, entity_id: str) -> Enforcer | None:
    if kind == "policy":
        return await dispatcher.enforcers.enforcer(entity_id, namespace_of(entity_id))
    state = await dispatcher.store.get("things", entity_id)
    if state is None or state.doc is None:
        return None
    return await dispatcher.thing_enforcer(state)
