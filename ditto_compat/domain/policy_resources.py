"""The addressable parts of a Policy (``basic-policy``, ``protocol-specification-policies``) and their Ditto names.

Every Policy command addresses one resource. Its kind decides the command and event names
(``policies.commands:modifySubject`` -> ``policies.events:subjectCreated``), the error codes
(``policies:subject.notfound`` / ``policies:subject.notmodifiable``) and the ``policy:/...`` resource the
caller needs READ or WRITE on. This table is the single place those names live, as ``resources.py`` is for
Things.

Subject ids (``google:https://...``) and resource keys (``thing:/features/f``) contain ``/``, so a path below
``subjects/`` or ``resources/`` is one key, not more segments: a path is classified from its segments, and the
key is everything after the keyword, which is how Ditto's routes and protocol paths treat them
(``/entries/owner/resources/thing:/features``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from ditto_compat.errors import (
    DittoError,
    PolicyEntryModificationInvalid,
    PolicyEntryNotFound,
    PolicyEntryNotModifiable,
    PolicyEntryResourceNotFound,
    PolicyEntryResourceNotModifiable,
    PolicyImportNotFound,
    PolicyImportNotModifiable,
    PolicyImportsNotFound,
    PolicyImportsNotModifiable,
    PolicyModificationInvalid,
    PolicyNotFound,
    PolicyNotModifiable,
    PolicyResourcesNotFound,
    PolicyResourcesNotModifiable,
    ResourceNotFound,
    SubjectNotFound,
    SubjectNotModifiable,
    SubjectsNotFound,
    SubjectsNotModifiable,
)
from ditto_compat.model.pointer import Pointer


class PolicyKind(Enum):
    """The value is Ditto's command name stem (``modify<value>``, ``retrieve<value>``, ``delete<value>``)."""

    POLICY = "Policy"
    ENTRIES = "PolicyEntries"
    ENTRY = "PolicyEntry"
    SUBJECTS = "Subjects"
    SUBJECT = "Subject"
    RESOURCES = "Resources"
    RESOURCE = "Resource"
    ALLOWED_ADDITIONS = "PolicyEntryAllowedAdditions"  # 3.9
    NAMESPACES = "PolicyEntryNamespaces"  # 3.9
    IMPORTABLE = "PolicyEntryImportable"  # 3.9
    REFERENCES = "PolicyEntryReferences"  # 3.9
    IMPORTS = "PolicyImports"
    IMPORT = "PolicyImport"
    IMPORT_ENTRIES = "PolicyImportEntries"  # 3.9
    IMPORT_TRANSITIVE_IMPORTS = "PolicyImportTransitiveImports"  # 3.9


# The entry fields that the 3.9 sub-resources address, keyed by their path segment
ENTRY_FIELDS: dict[str, PolicyKind] = {
    "allowedAdditions": PolicyKind.ALLOWED_ADDITIONS,
    "namespaces": PolicyKind.NAMESPACES,
    "importable": PolicyKind.IMPORTABLE,
    "references": PolicyKind.REFERENCES,
}
IMPORT_FIELDS: dict[str, PolicyKind] = {
    "entries": PolicyKind.IMPORT_ENTRIES,
    "transitiveImports": PolicyKind.IMPORT_TRANSITIVE_IMPORTS,
}

# Collections are replaced as a whole: Ditto answers 204 and emits "...Modified" even when they were absent
COLLECTIONS = frozenset(
    {
        PolicyKind.ENTRIES,
        PolicyKind.SUBJECTS,
        PolicyKind.RESOURCES,
        PolicyKind.IMPORTS,
        PolicyKind.ALLOWED_ADDITIONS,
        PolicyKind.NAMESPACES,
        PolicyKind.IMPORTABLE,
        PolicyKind.IMPORT_ENTRIES,
        PolicyKind.IMPORT_TRANSITIVE_IMPORTS,
    }
)

# What the HTTP API (OpenAPI 3.9.6) lets a client delete; the others answer 405
DELETABLE = frozenset(
    {
        PolicyKind.POLICY,
        PolicyKind.ENTRY,
        PolicyKind.SUBJECT,
        PolicyKind.RESOURCE,
        PolicyKind.REFERENCES,
        PolicyKind.IMPORTS,
        PolicyKind.IMPORT,
    }
)

# kind -> (not found, not modifiable), as Ditto's PolicyCommandToAccess/ModifyExceptionRegistry map them;
# retrieving the entries of a policy one may not read answers policy.notfound, not an entries code
_ERRORS: dict[PolicyKind, tuple[type[DittoError], type[DittoError]]] = {
    PolicyKind.POLICY: (PolicyNotFound, PolicyNotModifiable),
    PolicyKind.ENTRIES: (PolicyNotFound, PolicyNotModifiable),
    PolicyKind.ENTRY: (PolicyEntryNotFound, PolicyEntryNotModifiable),
    PolicyKind.SUBJECTS: (SubjectsNotFound, SubjectsNotModifiable),
    PolicyKind.SUBJECT: (SubjectNotFound, SubjectNotModifiable),
    PolicyKind.RESOURCES: (PolicyResourcesNotFound, PolicyResourcesNotModifiable),
    PolicyKind.RESOURCE: (PolicyEntryResourceNotFound, PolicyEntryResourceNotModifiable),
    PolicyKind.ALLOWED_ADDITIONS: (PolicyEntryNotFound, PolicyEntryNotModifiable),
    PolicyKind.NAMESPACES: (PolicyEntryNotFound, PolicyEntryNotModifiable),
    PolicyKind.IMPORTABLE: (PolicyEntryNotFound, PolicyEntryNotModifiable),
    PolicyKind.REFERENCES: (PolicyEntryNotFound, PolicyEntryNotModifiable),
    PolicyKind.IMPORTS: (PolicyImportsNotFound, PolicyImportsNotModifiable),
    PolicyKind.IMPORT: (PolicyImportNotFound, PolicyImportNotModifiable),
    PolicyKind.IMPORT_ENTRIES: (PolicyImportNotFound, PolicyImportNotModifiable),
    PolicyKind.IMPORT_TRANSITIVE_IMPORTS: (PolicyImportNotFound, PolicyImportNotModifiable),
}

_NOT_FOUND_HELP = "Check if the ID of your requested Policy was correct and you have sufficient permissions."


@dataclass(frozen=True, slots=True)
class PolicyResource:
    """A resource of a Policy: its kind and the keys that name it (``label`` for everything below an entry,
    ``subject_id`` / ``resource_key`` / ``import_id`` for single subjects, resources and imports)."""

    kind: PolicyKind
    label: str | None = None
    subject_id: str | None = None
    resource_key: str | None = None
    import_id: str | None = None

    @property
    def path(self) -> Pointer:
        """The keys of this resource inside the policy JSON (a resource key is one key)."""
        kind = self.kind
        if kind is PolicyKind.POLICY:
            return ()
        if kind in (PolicyKind.IMPORTS, PolicyKind.IMPORT, *IMPORT_FIELDS.values()):
            if kind is PolicyKind.IMPORTS:
                return ("imports",)
            assert self.import_id is not None
            if kind is PolicyKind.IMPORT:
                return ("imports", self.import_id)
            return ("imports", self.import_id, _field_of(kind, IMPORT_FIELDS))
        if kind is PolicyKind.ENTRIES:
            return ("entries",)
        assert self.label is not None
        entry: Pointer = ("entries", self.label)
        if kind is PolicyKind.ENTRY:
            return entry
        if kind is PolicyKind.SUBJECTS:
            return (*entry, "subjects")
        if kind is PolicyKind.SUBJECT:
            assert self.subject_id is not None
            return (*entry, "subjects", self.subject_id)
        if kind is PolicyKind.RESOURCES:
            return (*entry, "resources")
        if kind is PolicyKind.RESOURCE:
            assert self.resource_key is not None
            return (*entry, "resources", self.resource_key)
        return (*entry, _field_of(kind, ENTRY_FIELDS))

    @property
    def ditto_path(self) -> str:
        """The path as Ditto renders it in protocol messages and events: keys joined by ``/`` unescaped
        (``/entries/owner/resources/thing:/features``); :func:`policy_resource_of` reads it back."""
        return "/" + "/".join(self.path)

    @property
    def enforcement_resource(self) -> str:
        """The ``policy:`` resource a caller needs permissions on. Ditto appends the command's resource path
        to ``policy:``, so the ``/`` of a resource key or subject id separates segments there as well; empty
        segments (``google:https://...``) are dropped, as a JSON pointer has none."""
        segments = [s for s in "/".join(self.path).split("/") if s]
        return "policy:/" + "/".join(segments)

    @property
    def entry(self) -> PolicyResource:
        """The entry this resource belongs to (``policies:entry.notfound`` when it is missing)."""
        return PolicyResource(PolicyKind.ENTRY, label=self.label)

    @property
    def import_resource(self) -> PolicyResource:
        return PolicyResource(PolicyKind.IMPORT, import_id=self.import_id)

    def command_type(self, action: str) -> str:
        """``policies.commands:modifySubject``; creating a whole policy is ``createPolicy``."""
        return f"policies.commands:{action}{self.kind.value}"

    def event_type(self, verb: str) -> str:
        """``policies.events:subjectCreated`` for verb ``Created``."""
        name = self.kind.value
        return f"policies.events:{name[0].lower()}{name[1:]}{verb}"

    def describe(self, policy_id: str) -> str:
        on_policy = f"the Policy with ID '{policy_id}'"
        of_entry = f"of the PolicyEntry with Label '{self.label}' on {on_policy}"
        texts = {
            PolicyKind.POLICY: f"The Policy with ID '{policy_id}'",
            PolicyKind.ENTRIES: f"The Policy with ID '{policy_id}'",
            PolicyKind.ENTRY: f"The PolicyEntry with Label '{self.label}' on {on_policy}",
            PolicyKind.SUBJECTS: f"The Subjects {of_entry}",
            PolicyKind.SUBJECT: f"The Subject with ID '{self.subject_id}' {of_entry}",
            PolicyKind.RESOURCES: f"The Resources {of_entry}",
            PolicyKind.RESOURCE: f"The Resource '{self.resource_key}' {of_entry}",
            PolicyKind.ALLOWED_ADDITIONS: f"The allowed additions {of_entry}",
            PolicyKind.NAMESPACES: f"The namespaces {of_entry}",
            PolicyKind.IMPORTABLE: f"The importable type {of_entry}",
            PolicyKind.REFERENCES: f"The references {of_entry}",
            PolicyKind.IMPORTS: f"The imports of {on_policy}",
            PolicyKind.IMPORT: f"The import with PolicyId '{self.import_id}' on {on_policy}",
            PolicyKind.IMPORT_ENTRIES: (
                f"The imported entries of the import with PolicyId '{self.import_id}' on {on_policy}"
            ),
            PolicyKind.IMPORT_TRANSITIVE_IMPORTS: (
                f"The transitive imports of the import with PolicyId '{self.import_id}' on {on_policy}"
            ),
        }
        return texts[self.kind]

    def not_found(self, policy_id: str) -> DittoError:
        return _ERRORS[self.kind][0](
            f"{self.describe(policy_id)} could not be found or requester had insufficient permissions to "
            "access it.",
            _NOT_FOUND_HELP,
        )

    def not_modifiable(self, policy_id: str) -> DittoError:
        return _ERRORS[self.kind][1](
            f"{self.describe(policy_id)} could not be modified as the requester had insufficient permissions.",
            _NOT_FOUND_HELP,
        )

    def modification_invalid(self, policy_id: str) -> DittoError:
        """The write would leave nobody able to change the policy (Ditto's ``PoliciesValidator``): entry-level
        commands answer ``policies:entry.modificationinvalid``, the others ``policy.modificationinvalid``."""
        description = (
            "There must always be at least one PolicyEntry with 'WRITE' permissions on resource 'policy:/'."
        )
        if self.label is not None:
            return PolicyEntryModificationInvalid(
                f"The PolicyEntry with Label '{self.label}' on the Policy with ID '{policy_id}' could not be "
                "modified as the resulting Policy would be invalid.",
                description,
            )
        return PolicyModificationInvalid(
            f"The Policy with ID '{policy_id}' could not be modified as the resulting Policy would be invalid.",
            description,
        )


def _field_of(kind: PolicyKind, table: dict[str, PolicyKind]) -> str:
    return next(name for name, k in table.items() if k is kind)


POLICY = PolicyResource(PolicyKind.POLICY)


def policy_not_found(policy_id: str) -> DittoError:
    return POLICY.not_found(policy_id)


def policy_resource_of(segments: Sequence[str]) -> PolicyResource:
    """Classify the (already percent-decoded) segments of a path below a policy id.

    A trailing empty segment (``entries/``) is ignored, except below ``resources/`` and ``subjects/`` where it
    belongs to the key (``resources/thing:/`` is the key ``thing:/``). Paths that address nothing Ditto knows
    answer 404, as Ditto's router does.
    """
    parts = list(segments)
    n = len(parts)
    head = parts[0] if parts else ""
    if n == 0 or (n == 1 and head == ""):
        return POLICY
    if head == "entries":
        if n == 1 or (n == 2 and parts[1] == ""):
            return PolicyResource(PolicyKind.ENTRIES)
        label = parts[1]
        if not label:
            raise _unknown(parts)
        if n == 2 or (n == 3 and parts[2] == ""):
            return PolicyResource(PolicyKind.ENTRY, label=label)
        part = parts[2]
        rest = "/".join(parts[3:])
        if part == "subjects":
            if not rest:
                return PolicyResource(PolicyKind.SUBJECTS, label=label)
            return PolicyResource(PolicyKind.SUBJECT, label=label, subject_id=rest)
        if part == "resources":
            if not rest:
                return PolicyResource(PolicyKind.RESOURCES, label=label)
            return PolicyResource(PolicyKind.RESOURCE, label=label, resource_key=rest)
        if part in ENTRY_FIELDS and (n == 3 or (n == 4 and parts[3] == "")):
            return PolicyResource(ENTRY_FIELDS[part], label=label)
    elif head == "imports":
        if n == 1 or (n == 2 and parts[1] == ""):
            return PolicyResource(PolicyKind.IMPORTS)
        import_id = parts[1]
        if not import_id:
            raise _unknown(parts)
        if n == 2 or (n == 3 and parts[2] == ""):
            return PolicyResource(PolicyKind.IMPORT, import_id=import_id)
        if parts[2] in IMPORT_FIELDS and (n == 3 or (n == 4 and parts[3] == "")):
            return PolicyResource(IMPORT_FIELDS[parts[2]], import_id=import_id)
    raise _unknown(parts)


def parse_ditto_path(path: str) -> PolicyResource:
    """The resource of a Ditto path such as ``/entries/owner/resources/thing:/features``."""
    if path in ("", "/"):
        return POLICY
    return policy_resource_of((path[1:] if path.startswith("/") else path).split("/"))


def _unknown(parts: Sequence[str]) -> DittoError:
    return ResourceNotFound(f"The resource '/{'/'.join(parts)}' of a Policy does not exist.")
