"""Policy commands and their strategies (``protocol-specification-policies``, ``basic-policy``).

As for Things, a strategy is a pure function of the command, the current policy and the time: it raises a
DittoError or returns an :class:`Outcome` carrying the :class:`PolicyEvent` to journal and the response to send.
There are three (retrieve, modify, delete) plus creation, not one per Ditto command: the resource table
(``policy_resources.py``) names them. The service does the I/O around them: loading, enforcement (who may),
the lockout check and the compare-and-set commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ditto_compat.domain.enforcer import Enforcer
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.policy_resolution import (
    IMPORTED_PREFIX,
    check_policy_lockout,
    resolve_entries,
    resolved_view,
)
from ditto_compat.domain.policy_resources import (
    COLLECTIONS,
    POLICY,
    PolicyKind,
    PolicyResource,
    parse_ditto_path,
    policy_not_found,
)
from ditto_compat.domain.policy_validation import (
    EXPIRY_GRANULARITY,
    Normalizer,
    check_policy,
    normalize_address,
    resolve_placeholders,
)
from ditto_compat.domain.tags import check_preconditions, content_tag, revision_tag
from ditto_compat.domain.things import Outcome, same_json
from ditto_compat.errors import (
    DittoError,
    PolicyConflict,
    PolicyEntryReferenceConflict,
    PolicyImportReferenceConflict,
    PolicyPreconditionFailed,
    PolicyPreconditionNotModified,
    PolicyViewInvalid,
)
from ditto_compat.model.fields import FieldSelector, project
from ditto_compat.model.headers import CommandHeaders, IfEqual
from ditto_compat.model.ids import namespace_of
from ditto_compat.model.pointer import MISSING, delete_at, get_at, set_at

# Values Ditto answers for an entry or import field that was never set (3.9 retrieve strategies: "absent ->
# 200 + []", importable defaults to implicit)
_DEFAULTS: dict[PolicyKind, Any] = {
    PolicyKind.ALLOWED_ADDITIONS: [],
    PolicyKind.NAMESPACES: [],
    PolicyKind.IMPORTABLE: "implicit",
    PolicyKind.REFERENCES: [],
    PolicyKind.IMPORTS: {},
    PolicyKind.IMPORT_ENTRIES: [],
    PolicyKind.IMPORT_TRANSITIVE_IMPORTS: [],
}
# writes that declare imports (and so take entries of other policies)
_DECLARING_IMPORTS = (PolicyKind.POLICY, PolicyKind.IMPORTS, PolicyKind.IMPORT, PolicyKind.IMPORT_ENTRIES)


@dataclass(frozen=True, slots=True)
class PolicyCommand:
    """``action`` is ``create`` (a new policy with this id), ``retrieve``, ``modify`` or ``delete``; a
    ``modify`` of the whole policy on an id that does not exist creates it, as ``PUT`` does."""

    action: str
    policy_id: str
    resource: PolicyResource = POLICY
    value: Any = MISSING
    headers: CommandHeaders = field(default_factory=CommandHeaders)
    fields: FieldSelector | None = None
    resolved: bool = False  # policy-view=resolved (3.9): the whole policy with its imports merged in

    @property
    def type(self) -> str:
        return self.resource.command_type(self.action)

    @property
    def wants_resolved_view(self) -> bool:
        """``policy-view`` only changes ``GET`` of the whole policy (``basic-policy`` "Effective policy view")."""
        return self.resolved and self.action == "retrieve" and self.resource.kind is PolicyKind.POLICY


@dataclass(frozen=True, slots=True)
class PolicyEvent:
    """A policy change in the shape of the Ditto Protocol event (``.../policies/events/<action>``): the Ditto
    event type (``policies.events:subjectCreated``), the action, Ditto's path and the new value."""

    type: str
    policy_id: str
    action: str  # created | modified | deleted
    path: str  # Ditto's unescaped path, e.g. "/entries/owner/resources/thing:/features"
    value: Any  # MISSING for deletions
    revision: int
    timestamp: str

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "policyId": self.policy_id,
            "action": self.action,
            "path": self.path,
            "revision": self.revision,
            "timestamp": self.timestamp,
        }
        if self.value is not MISSING:
            body["value"] = self.value
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PolicyEvent:
        return cls(
            type=body["type"],
            policy_id=body["policyId"],
            action=body["action"],
            path=body["path"],
            value=body.get("value", MISSING),
            revision=int(body["revision"]),
            timestamp=body["timestamp"],
        )


@dataclass(slots=True)  # as Outcome: treat it as immutable
class PolicyOutcome(Outcome):
    """The Things :class:`Outcome` (status, value, ETag, new document) with the policy event it journals."""

    policy_event: PolicyEvent | None = None


def apply_policy_event(doc: dict[str, Any] | None, event: PolicyEvent) -> dict[str, Any] | None:
    """The policy after ``event``; ``None`` means deleted. Strategies compute the new state with it, so
    replaying the journal gives what was stored."""
    resource = parse_ditto_path(event.path)
    path = resource.path
    if not path:
        return None if event.action == "deleted" else dict(event.value)
    base = doc or {}
    if event.action == "deleted" or (resource.kind is PolicyKind.REFERENCES and event.value == []):
        # an empty reference list is no reference list (Ditto stores none)
        return delete_at(base, path) if get_at(base, path) is not MISSING else base
    return set_at(base, path, event.value)


# ----------------------------------------------------------------------------------------------- preparation
def prepare(cmd: PolicyCommand, requester: str) -> PolicyCommand:
    """The command as the strategies and the enforcement see it: keys of its path in normal form and, for
    writes, ``{{ request:subjectId }}`` replaced by the caller's subject."""
    resource = normalize_address(cmd.resource, cmd.policy_id)
    value = cmd.value
    if cmd.action in ("create", "modify"):
        resource, value = resolve_placeholders(resource, value, requester)
    return replace(cmd, resource=resource, value=value)


def _check(headers: CommandHeaders, current: str | None, *, read: bool) -> None:
    check_preconditions(
        headers,
        current,
        read=read,
        failed=PolicyPreconditionFailed,
        not_modified=PolicyPreconditionNotModified,
        entity="Policy",
    )


def _if_equal_failed() -> DittoError:
    return PolicyPreconditionFailed(
        "The previous value was equal to the new value and the 'if-equal' header was set to 'skip'."
    )


def _now(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def current_value(doc: dict[str, Any], resource: PolicyResource, policy_id: str) -> Any:
    """What ``GET`` answers at ``resource`` (``MISSING`` when it does not exist); raises the parent's not-found
    error when the entry or import it belongs to does not exist."""
    kind = resource.kind
    below_entry = resource.label is not None and kind is not PolicyKind.ENTRY
    if below_entry and get_at(doc, resource.entry.path) is MISSING:
        raise resource.entry.not_found(policy_id)
    below_import = resource.import_id is not None and kind is not PolicyKind.IMPORT
    if below_import and get_at(doc, resource.import_resource.path) is MISSING:
        raise resource.import_resource.not_found(policy_id)
    value = get_at(doc, resource.path)
    if value is MISSING:
        return _DEFAULTS.get(kind, MISSING)
    return value


# ----------------------------------------------------------------------------------------------- strategies
def retrieve(cmd: PolicyCommand, state: EntityState | None) -> PolicyOutcome:
    """The stored value at the command's path (the service reduces it to the caller's READ view)."""
    if state is None or state.doc is None:
        raise policy_not_found(cmd.policy_id)
    resource = cmd.resource
    if resource.kind is PolicyKind.POLICY:
        tag = revision_tag(state.revision)
        _check(cmd.headers, tag, read=True)
        return PolicyOutcome(200, state.doc, tag)
    value = current_value(state.doc, resource, cmd.policy_id)
    if value is MISSING:
        raise resource.not_found(cmd.policy_id)
    tag = content_tag(value)
    _check(cmd.headers, tag, read=True)
    return PolicyOutcome(200, value, tag)


def create(
    cmd: PolicyCommand,
    state: EntityState | None,
    revision: int,
    now: str,
    granularity: timedelta = EXPIRY_GRANULARITY,
) -> PolicyOutcome:
    """A new policy (``PUT`` on a new id, ``POST``): 201 with the policy as stored; subject expiries are
    rounded up to ``granularity``."""
    if state is not None and state.doc is not None:
        raise PolicyConflict(
            f"The Policy with ID '{cmd.policy_id}' already exists", "Choose another Policy ID"
        )
    policy = Normalizer(cmd.policy_id, _now(now), granularity).policy(cmd.value)
    _check(cmd.headers, None, read=False)
    check_policy(cmd.policy_id, policy)
    event = PolicyEvent("policies.events:policyCreated", cmd.policy_id, "created", "/", policy, revision, now)
    return PolicyOutcome(201, policy, revision_tag(revision), new_doc=policy, policy_event=event)


def modify(
    cmd: PolicyCommand,
    state: EntityState,
    revision: int,
    now: str,
    granularity: timedelta = EXPIRY_GRANULARITY,
) -> PolicyOutcome:
    """``PUT`` on an existing policy or on any resource below it (creating it if absent): 201 with the value
    for a new entry, subject, resource, import or reference list, else 204; collections always 204."""
    if state.doc is None:
        raise policy_not_found(cmd.policy_id)
    doc = state.doc
    resource = cmd.resource
    normalizer = Normalizer(cmd.policy_id, _now(now), granularity)
    if resource.kind is PolicyKind.POLICY:
        policy = normalizer.policy(cmd.value)
        _check(cmd.headers, revision_tag(state.revision), read=False)
        if cmd.headers.if_equal is not IfEqual.UPDATE and same_json(policy, doc):
            raise _if_equal_failed()
        check_policy(cmd.policy_id, policy)
        event = PolicyEvent(
            "policies.events:policyModified", cmd.policy_id, "modified", "/", policy, revision, now
        )
        return PolicyOutcome(204, MISSING, revision_tag(revision), new_doc=policy, policy_event=event)
    value = normalizer.value(resource, cmd.value)
    current = current_value(doc, resource, cmd.policy_id)
    _check(cmd.headers, None if current is MISSING else content_tag(current), read=False)
    if cmd.headers.if_equal is not IfEqual.UPDATE and current is not MISSING and same_json(current, value):
        raise _if_equal_failed()
    if resource.kind is PolicyKind.REFERENCES:
        created = not current and bool(value)
    else:
        created = current is MISSING and resource.kind not in COLLECTIONS
    event = PolicyEvent(
        resource.event_type("Created" if created else "Modified"),
        cmd.policy_id,
        "created" if created else "modified",
        resource.ditto_path,
        value,
        revision,
        now,
    )
    new_doc = apply_policy_event(doc, event)
    assert new_doc is not None
    check_policy(cmd.policy_id, new_doc)
    return PolicyOutcome(
        201 if created else 204,
        value if created else MISSING,
        content_tag(value),
        new_doc=new_doc,
        policy_event=event,
    )


def delete(cmd: PolicyCommand, state: EntityState | None, revision: int, now: str) -> PolicyOutcome:
    """``DELETE`` of the policy, an entry, subject, resource, import, all imports or an entry's references."""
    if state is None or state.doc is None:
        raise policy_not_found(cmd.policy_id)
    doc = state.doc
    resource = cmd.resource
    if resource.kind is PolicyKind.POLICY:
        _check(cmd.headers, revision_tag(state.revision), read=False)
        event = PolicyEvent(
            "policies.events:policyDeleted", cmd.policy_id, "deleted", "/", MISSING, revision, now
        )
        return PolicyOutcome(204, MISSING, None, new_doc=None, policy_event=event)
    current = current_value(doc, resource, cmd.policy_id)
    _check(cmd.headers, None if current is MISSING else content_tag(current), read=False)
    if current is MISSING:
        raise resource.not_found(cmd.policy_id)
    _check_still_referenced(cmd.policy_id, doc, resource)
    event = PolicyEvent(
        resource.event_type("Deleted"), cmd.policy_id, "deleted", resource.ditto_path, MISSING, revision, now
    )
    new_doc = apply_policy_event(doc, event)
    assert new_doc is not None
    check_policy(cmd.policy_id, new_doc)
    return PolicyOutcome(204, MISSING, None, new_doc=new_doc, policy_event=event)


def _check_still_referenced(policy_id: str, doc: Mapping[str, Any], resource: PolicyResource) -> None:
    """An entry or import that entry ``references`` point to cannot be deleted (409, Ditto 3.9)."""
    entries: Mapping[str, Any] = doc.get("entries") or {}
    for label, entry in entries.items():
        for ref in entry.get("references") or []:
            imported = ref.get("import")
            if resource.kind is PolicyKind.ENTRY and imported is None and ref.get("entry") == resource.label:
                raise PolicyEntryReferenceConflict(
                    f"The entry '{resource.label}' of Policy '{policy_id}' cannot be removed because a local "
                    f"reference from entry '{label}' still points to it."
                )
            if imported is not None and (
                resource.kind is PolicyKind.IMPORTS
                or (resource.kind is PolicyKind.IMPORT and imported == resource.import_id)
            ):
                which = (
                    f"The imports of Policy '{policy_id}' cannot be removed"
                    if resource.kind is PolicyKind.IMPORTS
                    else f"The import '{imported}' of Policy '{policy_id}' cannot be removed"
                )
                raise PolicyImportReferenceConflict(f"{which} because entry references still point to it.")


# ----------------------------------------------------------------------------------------------- checks
def check_lockout(cmd: PolicyCommand, new_doc: Mapping[str, Any] | None) -> None:
    """Ditto's ``PoliciesValidator``: after every write some non-expiring subject keeps WRITE on ``policy:/``,
    unless the policy has imports (they may grant it); ``*.modificationinvalid`` (403) otherwise."""
    if new_doc is None or new_doc.get("imports"):
        return
    if not check_policy_lockout(new_doc, resolve_entries(new_doc, {})):
        raise cmd.resource.modification_invalid(cmd.policy_id)


def changes_imports(cmd: PolicyCommand) -> bool:
    """Whether the write declares imports the caller must be allowed to read (``PolicyImportsPreEnforcer``).
    Unlike Ditto this includes ``PUT .../imports/<id>/entries``: listing more entries of an import takes more of
    the imported policy, which must not bypass the check the whole import passed."""
    kind = cmd.resource.kind
    return cmd.action != "delete" and kind in _DECLARING_IMPORTS


def declared_imports(cmd: PolicyCommand, new_doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The imports a write declares: all of a new or replaced policy or import list, else the one it touches."""
    imports: Mapping[str, Any] = (new_doc or {}).get("imports") or {}
    if cmd.resource.kind in (PolicyKind.POLICY, PolicyKind.IMPORTS):
        return dict(imports)
    import_id = cmd.resource.import_id
    return {import_id: imports[import_id]} if import_id is not None and import_id in imports else {}


def imported_labels(imported_policy: Mapping[str, Any], declaration: Mapping[str, Any]) -> list[str]:
    """The entries an import takes: the implicitly importable ones plus those it lists explicitly."""
    entries: Mapping[str, Any] = imported_policy.get("entries") or {}
    implicit = [label for label, e in entries.items() if e.get("importable", "implicit") == "implicit"]
    return list(dict.fromkeys([*implicit, *(declaration.get("entries") or [])]))


# ----------------------------------------------------------------------------------------------- views
def parse_policy_view(text: str | None) -> bool:
    """``policy-view``: ``original`` (default) or ``resolved``, case-insensitive; ``True`` for resolved."""
    if text is None or not text.strip():
        return False
    value = text.strip().lower()
    if value not in ("original", "resolved"):
        raise PolicyViewInvalid(
            f"The 'policy-view' parameter has an invalid value: '{text}'. Valid values: 'original', 'resolved'."
        )
    return value == "resolved"


def resolved_policy(
    doc: Mapping[str, Any],
    imported: Mapping[str, Mapping[str, Any] | None],
    readable: Mapping[str, Callable[[str], bool]],
) -> dict[str, Any]:
    """The effective policy: own entries plus the imported ones as ``imported-<policyId>-<label>``, without
    the imported entries the caller may not read in their source policy (``readable[importId](label)``), so
    that READ on the importing policy does not expose the content of the policies it imports."""
    merged = resolved_view(doc, imported)
    own = set((doc.get("entries") or {}).keys())
    # longest ids first: "imported-a:b-c-X" belongs to import "a:b-c", not to "a:b"
    prefixes = sorted(((f"{IMPORTED_PREFIX}-{pid}-", pid) for pid in readable), key=lambda p: -len(p[0]))
    entries: dict[str, Any] = {}
    for label, entry in merged["entries"].items():
        if label not in own:
            source = next(((prefix, pid) for prefix, pid in prefixes if label.startswith(prefix)), None)
            if source is None or not readable[source[1]](label[len(source[0]) :]):
                continue
        entries[label] = entry
    return {**merged, "entries": entries}


def read_view(
    enforcer: Enforcer,
    subjects: Sequence[str],
    cmd: PolicyCommand,
    state: EntityState,
    value: Any,
) -> Any:
    """What of ``value`` (read at the command's path) the caller may see. The whole policy always keeps its
    ``policyId`` (Ditto's allow-list); special fields and ``fields`` apply to what is left."""
    resource = cmd.resource
    view = enforcer.read_view(subjects, resource.enforcement_resource, value)
    if resource.kind is not PolicyKind.POLICY:
        if view is MISSING:
            raise resource.not_found(cmd.policy_id)
        if cmd.fields is not None and isinstance(view, dict):
            return project(view, cmd.fields)
        return view
    doc: dict[str, Any] = {"policyId": cmd.policy_id}
    if isinstance(view, dict):
        doc.update((k, v) for k, v in view.items() if k != "policyId")
    if cmd.fields is None:
        return doc
    wanted = {p[0] for p in cmd.fields}
    if "_namespace" in wanted:
        doc["_namespace"] = namespace_of(cmd.policy_id)
    if "_revision" in wanted:
        doc["_revision"] = state.revision
    if "_created" in wanted:
        doc["_created"] = state.created
    if "_modified" in wanted:
        doc["_modified"] = state.modified
    return project(doc, cmd.fields)
