"""Which Thing commands a caller may run, and what of a Thing they may see (inventory §4,
Ditto's ``ThingCommandEnforcement``).

- retrieve: READ granted somewhere at or below the path (partial), else the resource's ``*.notfound`` (404):
  a caller must not learn that something exists that they cannot read. The answer is the READ view.
- modify / delete: WRITE granted at the path and not revoked anywhere below (unrestricted), else the
  resource's ``*.notmodifiable`` (403).
- merge: unrestricted WRITE at the path, or WRITE somewhere below plus unrestricted WRITE at every leaf the
  patch sets or deletes; a regex deletion needs WRITE on the object whose keys it deletes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from ditto_compat.domain.enforcer import READ, WRITE, Enforcer
from ditto_compat.domain.resources import Kind, ThingResource
from ditto_compat.domain.things import SPECIAL_FIELDS, ThingCommand
from ditto_compat.errors import ThingNotDeletable
from ditto_compat.model.merge import regex_of_key
from ditto_compat.model.pointer import Pointer, format_pointer


@lru_cache(maxsize=4096)  # every command and event asks for the resource of its path
def thing_resource(path: Pointer) -> str:
    return "thing:" + format_pointer(path)


def can_retrieve(enforcer: Enforcer, subjects: Sequence[str], path: Pointer) -> bool:
    return enforcer.has_partial(subjects, thing_resource(path), (READ,))


def authorize_retrieve(enforcer: Enforcer, subjects: Sequence[str], cmd: ThingCommand) -> None:
    if not can_retrieve(enforcer, subjects, cmd.path):
        raise cmd.resource.not_found(cmd.thing_id)


def authorize_write(enforcer: Enforcer, subjects: Sequence[str], cmd: ThingCommand) -> None:
    """Modify, delete and merge (create is authorized against the new Thing's policy by the caller)."""
    resource = cmd.resource
    if cmd.action == "merge":
        allowed = merge_allowed(enforcer, subjects, cmd.path, cmd.value)
    else:
        allowed = enforcer.has_unrestricted(subjects, thing_resource(cmd.path), (WRITE,))
    if allowed:
        return
    if cmd.action == "delete" and resource.kind is Kind.THING:
        raise ThingNotDeletable(
            f"The Thing with ID '{cmd.thing_id}' could not be deleted as the requester had insufficient "
            "permissions (WRITE on root resource is required)."
        )
    raise resource.not_modifiable(cmd.thing_id)


def merge_allowed(enforcer: Enforcer, subjects: Sequence[str], path: Pointer, patch: Any) -> bool:
    if enforcer.has_unrestricted(subjects, thing_resource(path), (WRITE,)):
        return True
    if not enforcer.has_partial(subjects, thing_resource(path), (WRITE,)):
        return False
    return all(
        enforcer.has_unrestricted(subjects, thing_resource(leaf), (WRITE,))
        for leaf in _patch_leaves(path, patch)
    )


def _patch_leaves(path: Pointer, patch: Any) -> Iterator[Pointer]:
    """Every path a merge patch sets or deletes; a regex key stands for its parent object."""
    if not isinstance(patch, dict) or not patch:
        yield path
        return
    for key, value in patch.items():
        if value is None and key.startswith("{{") and regex_of_key(key) is not None:
            yield path
        else:
            yield from _patch_leaves((*path, key), value)


def thing_view(
    enforcer: Enforcer, subjects: Sequence[str], thing_id: str, view: dict[str, Any]
) -> dict[str, Any]:
    """The READ view of a (projected) Thing: special fields and ``thingId`` survive, the rest leaf by leaf."""
    specials = {k: view[k] for k in SPECIAL_FIELDS if k in view}
    plain = {k: v for k, v in view.items() if k not in specials}
    filtered = enforcer.read_view(subjects, "thing:/", plain)
    out: dict[str, Any] = {"thingId": thing_id} if "thingId" in view else {}
    if isinstance(filtered, dict):
        out.update(filtered)
        if "thingId" in view:
            out["thingId"] = thing_id
    out.update(specials)
    return _ordered(out, view)


def _ordered(out: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    """Keep the key order of the unfiltered view (thingId first, as Ditto renders it)."""
    return {k: out[k] for k in like if k in out}


def value_view(enforcer: Enforcer, subjects: Sequence[str], resource: ThingResource, value: Any) -> Any:
    """The READ view of a sub-resource's value (``MISSING`` when nothing of it is readable)."""
    return enforcer.read_view(subjects, thing_resource(resource.path), value)
