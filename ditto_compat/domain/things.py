"""Thing commands and their strategies (``basic-signals-command``, ``httpapi-concepts``).

A strategy is a pure function of the command, the current Thing and the time: it either raises a DittoError
or returns an :class:`Outcome` with the event to persist and the response to send. The dispatcher does all
I/O around it. Policy creation for new Things is the dispatcher's job too, since it touches another entity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ditto_compat.domain.entity import EntityState as ThingState
from ditto_compat.domain.events import ThingEvent, apply_event
from ditto_compat.domain.resources import Kind, ThingResource, resource_of, thing_not_found

# the tag helpers live in domain/tags.py (shared with Policies) and stay importable from here
from ditto_compat.domain.tags import check_preconditions as check_preconditions
from ditto_compat.domain.tags import check_value_preconditions
from ditto_compat.domain.tags import content_tag as content_tag
from ditto_compat.domain.tags import revision_tag as revision_tag
from ditto_compat.domain.validation import THING_SIZE_LIMIT, check_thing_body, check_value
from ditto_compat.errors import (
    DittoError,
    JsonInvalid,
    MergeInvalid,
    PolicyIdNotDeletable,
    ThingConflict,
    ThingIdNotSettable,
    ThingPreconditionFailed,
    ThingTooLarge,
)
from ditto_compat.model.fields import FieldSelector, project
from ditto_compat.model.headers import CommandHeaders, IfEqual
from ditto_compat.model.jsonio import canonical, dumps
from ditto_compat.model.merge import merge_patch, minimized, remove_nulls
from ditto_compat.model.pointer import MISSING, Pointer, get_at
from ditto_compat.rql.ast import Query

THING_KEYS = ("thingId", "policyId", "definition", "attributes", "features")
SPECIAL_FIELDS = ("_namespace", "_revision", "_created", "_modified")


# Not frozen, for speed (a frozen init costs 1.2 us, once per command): treat it as immutable.
@dataclass(slots=True)
class ThingCommand:
    """``action`` is one of ``create``, ``retrieve``, ``modify``, ``merge``, ``delete``."""

    action: str
    thing_id: str
    path: Pointer = ()
    value: Any = MISSING
    headers: CommandHeaders = field(default_factory=CommandHeaders)
    fields: FieldSelector | None = None
    # the ``condition`` header: an RQL query the current Thing must match (``basic-conditional-requests``)
    condition: Query | None = None

    @property
    def resource(self) -> ThingResource:
        return resource_of(self.path)

    @property
    def type(self) -> str:
        name = self.resource.command_name
        return f"things.commands:{self.action}{name}"


# Not frozen, for speed (a frozen init costs 1 us, once per command): treat it as immutable.
@dataclass(slots=True)
class Outcome:
    status: int
    value: Any = MISSING
    tag: str | None = None  # the ETag, when known; else see ``tag_of``
    event: ThingEvent | None = None
    new_doc: dict[str, Any] | None = None
    # the value whose content tag is the ETag, hashed only if someone asks for it (a connection's telemetry
    # usually wants no response at all)
    tag_of: Any = MISSING

    @property
    def etag(self) -> str | None:
        if self.tag is not None or self.tag_of is MISSING:
            return self.tag
        return content_tag(self.tag_of)


def same_json(a: Any, b: Any) -> bool:
    """JSON equality (``true`` is not ``1``, unlike Python's ``==``), for ``if-equal``."""
    return canonical(a) == canonical(b)


# ----------------------------------------------------------------------------------------------- tags
def entity_tag(resource: ThingResource, state: ThingState | None) -> str | None:
    if state is None or state.doc is None:
        return None
    if resource.kind is Kind.THING:
        return revision_tag(state.revision)
    value = get_at(state.doc, resource.path)
    return None if value is MISSING else content_tag(value)


def _if_equal_failed() -> DittoError:
    return ThingPreconditionFailed(
        "The previous value was equal to the new value and the 'if-equal' header was set to 'skip'."
    )


# ----------------------------------------------------------------------------------------------- views
def thing_view(state: ThingState, selector: FieldSelector | None) -> dict[str, Any]:
    """The Thing's JSON as GET returns it: the stored JSON, plus special fields when they are selected."""
    doc = state.doc or {}
    if selector is None:
        return doc
    full = dict(doc)
    wanted = {p[0] for p in selector}
    if "_namespace" in wanted:
        full["_namespace"] = state.entity_id.split(":", 1)[0]
    if "_revision" in wanted:
        full["_revision"] = state.revision
    if "_created" in wanted:
        full["_created"] = state.created
    if "_modified" in wanted:
        full["_modified"] = state.modified
    return project(full, selector)


def normalize_thing(thing_id: str, body: dict[str, Any], policy_id: str | None) -> dict[str, Any]:
    """The stored form of a Thing body: known fields in Ditto's order; special and unknown fields dropped."""
    out: dict[str, Any] = {"thingId": thing_id}
    if policy_id is not None:
        out["policyId"] = policy_id
    for key in THING_KEYS[2:]:
        if key in body:
            out[key] = body[key]
    return out


def check_size(doc: dict[str, Any]) -> None:
    size = len(dumps(doc))
    if size > THING_SIZE_LIMIT:
        raise ThingTooLarge(
            f"The size of '{size // 1024}' kB exceeds the maximal allowed Thing size of "
            f"'{THING_SIZE_LIMIT // 1024}' kB.",
            "Reduce the Thing size in the bounds of the limit.",
        )


def check_body_thing_id(thing_id: str, body: dict[str, Any]) -> None:
    if "thingId" in body and body["thingId"] != thing_id:
        raise ThingIdNotSettable()


# ----------------------------------------------------------------------------------------------- strategies
def retrieve(cmd: ThingCommand, state: ThingState | None) -> Outcome:
    if state is None or state.doc is None:
        raise thing_not_found(cmd.thing_id)
    resource = cmd.resource
    if resource.kind is Kind.THING:
        tag = revision_tag(state.revision)
        check_preconditions(cmd.headers, tag, read=True)
        return Outcome(200, thing_view(state, cmd.fields), tag)
    _require_feature(resource, state.doc, cmd.thing_id)
    value = get_at(state.doc, resource.path)
    if value is MISSING:
        raise resource.not_found(cmd.thing_id)
    tag = content_tag(value)
    check_preconditions(cmd.headers, tag, read=True)
    if cmd.fields is not None and isinstance(value, dict):
        value = project(value, cmd.fields)
    return Outcome(200, value, tag)


def create(cmd: ThingCommand, state: ThingState | None, revision: int, now: str) -> Outcome:
    """Create a Thing whose body already carries its ``policyId`` (the dispatcher resolved the policy)."""
    if state is not None and state.doc is not None:
        raise ThingConflict(f"The Thing with ID '{cmd.thing_id}' already exists")
    body = cmd.value
    check_thing_body(body)
    check_preconditions(cmd.headers, None, read=False)
    doc = normalize_thing(cmd.thing_id, body, body.get("policyId"))
    check_size(doc)
    event = ThingEvent("things.events:thingCreated", cmd.thing_id, "created", (), doc, revision, now)
    return Outcome(201, doc, revision_tag(revision), event, doc)


def modify(cmd: ThingCommand, state: ThingState, revision: int, now: str) -> Outcome:
    """PUT on an existing Thing, or on any sub-resource (creating it if absent)."""
    if state.doc is None:
        raise thing_not_found(cmd.thing_id)
    resource = cmd.resource
    doc = state.doc
    value = cmd.value
    if resource.kind is Kind.THING:
        check_body_thing_id(cmd.thing_id, value)
        check_thing_body(value)
        check_preconditions(cmd.headers, revision_tag(state.revision), read=False)
        new_doc = normalize_thing(cmd.thing_id, value, value.get("policyId", doc.get("policyId")))
        if cmd.headers.if_equal is not IfEqual.UPDATE and same_json(new_doc, doc):
            raise _if_equal_failed()
        check_size(new_doc)
        event = ThingEvent(
            "things.events:thingModified", cmd.thing_id, "modified", (), new_doc, revision, now
        )
        return Outcome(204, MISSING, revision_tag(revision), event, new_doc)
    _require_feature(resource, doc, cmd.thing_id)
    check_value(resource, value)
    current = get_at(doc, resource.path)
    check_value_preconditions(cmd.headers, current, read=False)
    if cmd.headers.if_equal is not IfEqual.UPDATE and current is not MISSING and same_json(current, value):
        raise _if_equal_failed()
    created = current is MISSING and resource.kind is not Kind.POLICY_ID
    event = ThingEvent(
        resource.event_type("Created" if created else "Modified"),
        cmd.thing_id,
        "created" if created else "modified",
        resource.path,
        value,
        revision,
        now,
    )
    updated = apply_event(doc, event)
    assert updated is not None
    check_size(updated)
    return Outcome(201 if created else 204, value if created else MISSING, None, event, updated, tag_of=value)


def merge(cmd: ThingCommand, state: ThingState | None, revision: int, now: str) -> Outcome:
    """PATCH with a JSON merge patch at any path (RFC 7396 plus Ditto's regex deletion)."""
    resource = cmd.resource
    patch = cmd.value
    doc = state.doc if state is not None else None
    if doc is None:
        # merging into a missing Thing creates it; the dispatcher routes that to create()
        raise thing_not_found(cmd.thing_id)
    if resource.kind is Kind.THING:
        if not isinstance(patch, dict):
            raise MergeInvalid("The merge patch for a Thing must be a JSON object.")
        check_body_thing_id(cmd.thing_id, patch)
        if "thingId" in patch and patch["thingId"] is None:
            raise ThingIdNotSettable("The Thing ID of a Thing cannot be deleted.")
        if "policyId" in patch and patch["policyId"] is None:
            raise PolicyIdNotDeletable()
    elif resource.kind is Kind.POLICY_ID and patch is None:
        raise PolicyIdNotDeletable()
    _require_feature(resource, doc, cmd.thing_id, allow_missing=True)
    current = get_at(doc, resource.path)
    if resource.kind is Kind.THING and state:
        check_preconditions(cmd.headers, revision_tag(state.revision), read=False)
    else:
        check_value_preconditions(cmd.headers, current, read=False)
    merged = merge_patch(None if current is MISSING else current, patch)
    if resource.kind is Kind.THING:
        merged = normalize_thing(cmd.thing_id, merged, merged.get("policyId"))
        check_thing_body(merged)
    elif merged is not None:
        check_value(resource, merged)
    if cmd.headers.if_equal is not IfEqual.UPDATE:
        changed, reduced = minimized(None if current is MISSING else current, patch)
        if not changed or (current is not MISSING and same_json(merged, current)):
            raise _if_equal_failed()
        if cmd.headers.if_equal is IfEqual.SKIP_MINIMIZING_MERGE:
            patch = reduced
    event = ThingEvent(
        "things.events:thingMerged", cmd.thing_id, "merged", resource.path, patch, revision, now
    )
    new_doc = apply_event(doc, event)
    if new_doc is None or "thingId" not in new_doc:
        raise MergeInvalid("The merge patch would remove the Thing's ID.")
    check_size(new_doc)
    if resource.kind is Kind.THING:
        return Outcome(204, MISSING, revision_tag(revision), event, new_doc)
    # a merge that removed the resource has no tag (get_at gives MISSING)
    return Outcome(204, MISSING, None, event, new_doc, tag_of=get_at(new_doc, resource.path))


def merge_creation_body(thing_id: str, patch: Any) -> dict[str, Any]:
    """A PATCH on a missing Thing creates it from the patch without its deletions (``things:merge.invalid``
    when nothing would be created)."""
    if not isinstance(patch, dict) or not patch:
        raise MergeInvalid(
            f"The Thing with ID '{thing_id}' could not be created by a merge patch that is empty or null."
        )
    check_body_thing_id(thing_id, patch)
    body = remove_nulls(patch)
    if not isinstance(body, dict):
        raise MergeInvalid("The merge patch for a Thing must be a JSON object.")
    return body


def delete(cmd: ThingCommand, state: ThingState | None, revision: int, now: str) -> Outcome:
    if state is None or state.doc is None:
        raise thing_not_found(cmd.thing_id)
    resource = cmd.resource
    if resource.kind is Kind.POLICY_ID:
        raise PolicyIdNotDeletable()
    doc = state.doc
    if resource.kind is Kind.THING:
        check_preconditions(cmd.headers, revision_tag(state.revision), read=False)
        event = ThingEvent("things.events:thingDeleted", cmd.thing_id, "deleted", (), MISSING, revision, now)
        return Outcome(204, MISSING, None, event, None)
    _require_feature(resource, doc, cmd.thing_id)
    current = get_at(doc, resource.path)
    check_value_preconditions(cmd.headers, current, read=False)
    if current is MISSING:
        raise resource.not_found(cmd.thing_id)
    event = ThingEvent(
        resource.event_type("Deleted"), cmd.thing_id, "deleted", resource.path, MISSING, revision, now
    )
    return Outcome(204, MISSING, None, event, apply_event(doc, event))


def _require_feature(
    resource: ThingResource, doc: dict[str, Any], thing_id: str, *, allow_missing: bool = False
) -> None:
    """Commands below a feature need the feature itself (``things:feature.notfound`` otherwise)."""
    if allow_missing or resource.feature_id is None or resource.kind is Kind.FEATURE:
        return
    features = doc.get("features")
    if not isinstance(features, dict) or resource.feature_id not in features:
        raise resource_of(("features", resource.feature_id)).not_found(thing_id)


def json_body(value: Any) -> Any:
    """Reject bodies that are not what a Thing PUT needs, before any strategy runs."""
    if not isinstance(value, dict):
        raise JsonInvalid("The Thing must be a JSON object.")
    return value
