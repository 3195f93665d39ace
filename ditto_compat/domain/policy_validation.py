"""Validation and normal form of Policy JSON (``basic-policy``, OpenAPI schemas ``Policy``, ``PolicyEntry``).

Ditto parses every policy body into its model and renders it back, so unknown fields disappear, ``grant`` and
``revoke`` are always present, subject expiries are rounded up to the full hour and a resource key has one
spelling (``thing:`` is ``thing:/``). The ``normalize_*`` functions do the same on plain dicts and raise the
error Ditto raises for the first thing wrong:

- labels: not empty, no ``/`` or control characters (``policies:entry.invalid``), not starting with
  ``imported`` or ``nsimported-`` (``policies:label.invalid``);
- subject ids: ``<issuer>:<subject>`` without control characters (``policies:subjectid.invalid``), with
  ``{{ request:subjectId }}`` resolved before (:func:`resolve_placeholders`) and any other placeholder refused
  (``placeholder:placeholder.notresolvable``); a subject needs a ``type`` (``json.field.missing``) and an
  ``expiry`` must be ISO-8601 and in the future (``policies:subjectexpiry.invalid``);
- resources: ``thing:/...``, ``policy:/...`` or ``message:/...`` with ``grant`` / ``revoke`` lists of
  ``READ``, ``WRITE``, ``EXECUTE`` (``policies:entry.invalid``);
- imports: at most 10 (``policies:imports.toolarge``), valid policy ids other than the policy's own
  (``policies:id.invalid``, ``policies:import.invalid``); ``importable`` is implicit|explicit|never;
- the whole policy: 100 kB (``policies:policy.toolarge``, 413) and intact entry references
  (``policies:entry.invalid``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ditto_compat.domain.policies import check_policy_size
from ditto_compat.domain.policy_resources import PolicyKind, PolicyResource
from ditto_compat.errors import (
    JsonFieldMissing,
    JsonInvalid,
    PlaceholderNotResolvable,
    PolicyEntryInvalid,
    PolicyIdNotSettable,
    PolicyImportInvalid,
    PolicyImportsTooLarge,
    PolicyLabelInvalid,
    SubjectExpiryInvalid,
    SubjectIdInvalid,
)
from ditto_compat.model.ids import check_namespace, check_policy_id

MAX_IMPORTS = 10
PERMISSIONS = ("READ", "WRITE", "EXECUTE")
RESOURCE_TYPES = ("thing", "policy", "message")
IMPORTABLE_TYPES = ("implicit", "explicit", "never")
ALLOWED_ADDITIONS = ("subjects", "resources", "namespaces")
RESERVED_LABEL_PREFIXES = ("imported", "nsimported-")
# Ditto's default POLICY_SUBJECT_EXPIRY_GRANULARITY: an expiry is rounded up to the next full hour
EXPIRY_GRANULARITY = timedelta(hours=1)

_CONTROL = re.compile(r"[\x00-\x1F\x7F]")
_REQUEST_SUBJECT = re.compile(r"\{\{\s*request:subjectId\s*\}\}|\$\{request\.subjectId\}")
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\$\{.*?\}")
_ENTRY_KEYS = ("subjects", "resources", "namespaces", "importable", "allowedAdditions", "references")


# ----------------------------------------------------------------------------------------------- placeholders
def resolve_subject_placeholders(subject_id: str, requester: str) -> str:
    """``{{ request:subjectId }}`` (also Ditto's legacy ``${request.subjectId}``) becomes the caller's subject."""
    return _REQUEST_SUBJECT.sub(lambda _m: requester, subject_id)


def resolve_placeholders(resource: PolicyResource, value: Any, requester: str) -> tuple[PolicyResource, Any]:
    """Resolve the request placeholders in every subject id a write carries: in the path of a single subject and
    in the subject keys of a policy, entries, an entry or subjects. Other placeholders stay and are refused by
    the subject id check, as Ditto refuses them."""
    kind = resource.kind
    if kind is PolicyKind.SUBJECT and resource.subject_id is not None:
        resource = replace(resource, subject_id=resolve_subject_placeholders(resource.subject_id, requester))
    if not isinstance(value, dict):
        return resource, value
    if kind is PolicyKind.POLICY and isinstance(value.get("entries"), dict):
        value = {**value, "entries": _resolve_entries(value["entries"], requester)}
    elif kind is PolicyKind.ENTRIES:
        value = _resolve_entries(value, requester)
    elif kind is PolicyKind.ENTRY:
        value = _resolve_entry(value, requester)
    elif kind is PolicyKind.SUBJECTS:
        value = _resolve_subjects(value, requester)
    return resource, value


def _resolve_entries(entries: dict[str, Any], requester: str) -> dict[str, Any]:
    return {label: _resolve_entry(entry, requester) for label, entry in entries.items()}


def _resolve_entry(entry: Any, requester: str) -> Any:
    if isinstance(entry, dict) and isinstance(entry.get("subjects"), dict):
        return {**entry, "subjects": _resolve_subjects(entry["subjects"], requester)}
    return entry


def _resolve_subjects(subjects: dict[str, Any], requester: str) -> dict[str, Any]:
    return {resolve_subject_placeholders(sid, requester): s for sid, s in subjects.items()}


# ----------------------------------------------------------------------------------------------- keys
def check_label(label: Any) -> str:
    if not isinstance(label, str) or not label or "/" in label or _CONTROL.search(label):
        raise PolicyEntryInvalid(
            f"The Policy Label {label} is invalid",
            "The label must not be empty and must not contain slashes or control characters.",
        )
    if label.startswith(RESERVED_LABEL_PREFIXES):
        raise PolicyLabelInvalid(f"Label '{label}' is not valid!")
    return label


def check_subject_id(subject_id: Any) -> str:
    if not isinstance(subject_id, str):
        raise SubjectIdInvalid(f"Subject ID '{subject_id}' is not valid!")
    placeholder = _PLACEHOLDER.search(subject_id)
    if placeholder is not None:
        raise PlaceholderNotResolvable(f"The placeholder '{placeholder.group(0)}' is unknown.")
    _issuer, colon, subject = subject_id.partition(":")
    if not colon or not subject or _CONTROL.search(subject_id):
        raise SubjectIdInvalid(f"Subject ID '{subject_id}' is not valid!")
    return subject_id


def normalize_resource_key(key: Any) -> str:
    """``thing:/features/f/`` -> ``thing:/features/f``; ``thing:`` -> ``thing:/`` (Ditto's ``ResourceKey``)."""
    if not isinstance(key, str) or _CONTROL.search(key) or ":" not in key:
        raise _resource_invalid(key, "A resource key is a type and a path separated by ':', e.g. 'thing:/'.")
    kind, _, path = key.partition(":")
    if kind not in RESOURCE_TYPES:
        raise _resource_invalid(key, "The resource type must be one of 'thing', 'policy' or 'message'.")
    parts = path.strip("/").split("/") if path.strip("/") else []
    if any(p == "" for p in parts):
        raise _resource_invalid(key, "The resource path must not contain empty segments.")
    return f"{kind}:/" + "/".join(parts)


def _resource_invalid(key: Any, description: str) -> PolicyEntryInvalid:
    return PolicyEntryInvalid(f"The Policy Resource {key} is invalid", description)


def check_import_id(policy_id: str, import_id: Any) -> str:
    if not isinstance(import_id, str):
        raise JsonInvalid("The ID of an imported Policy must be a JSON string.")
    check_policy_id(import_id)
    if import_id == policy_id:
        raise PolicyImportInvalid(
            f"The Policy with ID '{policy_id}' cannot import itself.",
            "The Policy Import references the policy where it is defined.",
        )
    return import_id


def normalize_address(resource: PolicyResource, policy_id: str) -> PolicyResource:
    """The keys in a command's path in their normal form; refuses what can never name anything (a malformed
    resource key or imported policy id answer 400 on every method, as Ditto's router parses them)."""
    if resource.resource_key is not None:
        resource = replace(resource, resource_key=normalize_resource_key(resource.resource_key))
    if resource.import_id is not None:
        check_import_id(policy_id, resource.import_id)
    return resource


# ----------------------------------------------------------------------------------------------- values
@dataclass(frozen=True, slots=True)
class Normalizer:
    """Validates and normalizes the JSON of one write to ``policy_id`` at time ``now``; subject expiries are
    rounded up to ``granularity`` (Ditto's ``POLICY_SUBJECT_EXPIRY_GRANULARITY``)."""

    policy_id: str
    now: datetime
    granularity: timedelta = EXPIRY_GRANULARITY

    def value(self, resource: PolicyResource, value: Any) -> Any:
        """The normal form of ``value`` written at ``resource``."""
        kind = resource.kind
        if kind is PolicyKind.POLICY:
            return self.policy(value)
        if kind is PolicyKind.ENTRIES:
            return self.entries(value)
        if kind is PolicyKind.ENTRY:
            return self.entry(check_label(resource.label), value)
        if kind is PolicyKind.SUBJECTS:
            return self.subjects(value)
        if kind is PolicyKind.SUBJECT:
            check_subject_id(resource.subject_id)
            return self.subject(value)
        if kind is PolicyKind.RESOURCES:
            return self.resources(value)
        if kind is PolicyKind.RESOURCE:
            return self.resource(str(resource.resource_key), value)
        if kind is PolicyKind.ALLOWED_ADDITIONS:
            return self.allowed_additions(value)
        if kind is PolicyKind.NAMESPACES:
            return self.namespaces(value)
        if kind is PolicyKind.IMPORTABLE:
            return self.importable(value)
        if kind is PolicyKind.REFERENCES:
            return self.references(value)
        if kind is PolicyKind.IMPORTS:
            return self.imports(value)
        if kind is PolicyKind.IMPORT:
            return self.policy_import(value)
        if kind is PolicyKind.IMPORT_ENTRIES:
            return self.import_entries(value)
        return self.transitive_imports(value)

    def policy(self, body: Any) -> dict[str, Any]:
        obj = _object(body, "The Policy")
        if "policyId" in obj and obj["policyId"] != self.policy_id:
            raise PolicyIdNotSettable()
        policy: dict[str, Any] = {"policyId": self.policy_id}
        if obj.get("imports") is not None:
            policy["imports"] = self.imports(obj["imports"])
        policy["entries"] = self.entries(obj.get("entries", {}))
        return policy

    def entries(self, value: Any) -> dict[str, Any]:
        obj = _object(value, "The 'entries' of a Policy")
        return {check_label(label): self.entry(label, entry) for label, entry in obj.items()}

    def entry(self, label: str, value: Any) -> dict[str, Any]:
        obj = _object(value, f"The PolicyEntry '{label}'")
        entry: dict[str, Any] = {
            "subjects": self.subjects(obj.get("subjects", {})),
            "resources": self.resources(obj.get("resources", {})),
        }
        if obj.get("namespaces") is not None:
            entry["namespaces"] = self.namespaces(obj["namespaces"])
        if obj.get("importable") is not None:
            entry["importable"] = self.importable(obj["importable"])
        if obj.get("allowedAdditions") is not None:
            entry["allowedAdditions"] = self.allowed_additions(obj["allowedAdditions"])
        references = self.references(obj["references"]) if obj.get("references") is not None else []
        if references:  # Ditto keeps no empty reference list
            entry["references"] = references
        return entry

    def subjects(self, value: Any) -> dict[str, Any]:
        obj = _object(value, "The 'subjects' of a PolicyEntry")
        return {check_subject_id(sid): self.subject(subject) for sid, subject in obj.items()}

    def subject(self, value: Any) -> dict[str, Any]:
        obj = _object(value, "A Subject")
        subject_type = obj.get("type")
        if subject_type is None:
            raise JsonFieldMissing("The 'type' for the 'subject' is missing.")
        if not isinstance(subject_type, str):
            raise JsonInvalid("The 'type' of a Subject must be a JSON string.")
        subject: dict[str, Any] = {"type": subject_type}
        if obj.get("expiry") is not None:
            subject["expiry"] = self.expiry(obj["expiry"])
        if obj.get("announcement") is not None:
            subject["announcement"] = _object(obj["announcement"], "The 'announcement' of a Subject")
        return subject

    def expiry(self, value: Any) -> str:
        """ISO-8601, rounded up to the full hour, and not in the past (Ditto's ``SubjectExpiry``)."""
        text = value if isinstance(value, str) else str(value)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            # a naive time has no instant; the extremes of the calendar cannot be rounded up
            rounded = (
                _round_up(parsed.astimezone(UTC), self.granularity) if parsed.tzinfo is not None else None
            )
        except (ValueError, OverflowError):
            rounded = None
        if rounded is None:
            raise SubjectExpiryInvalid(
                f"Subject expiry timestamp '{text}' is not valid.",
                "It must be provided as ISO-8601 formatted char sequence.",
            )
        if rounded <= self.now:
            raise SubjectExpiryInvalid(
                f"Subject expiry timestamp '{text}' is not valid.",
                "It must not be in the past, please adjust to a timestamp in the future.",
            )
        return rounded.strftime("%Y-%m-%dT%H:%M:%SZ")

    def resources(self, value: Any) -> dict[str, Any]:
        obj = _object(value, "The 'resources' of a PolicyEntry")
        out: dict[str, Any] = {}
        for key, resource in obj.items():
            normalized = normalize_resource_key(key)
            out[normalized] = self.resource(normalized, resource)
        return out

    def resource(self, key: str, value: Any) -> dict[str, Any]:
        obj = _object(value, f"The Resource '{key}'")
        return {"grant": _permissions(key, obj, "grant"), "revoke": _permissions(key, obj, "revoke")}

    def namespaces(self, value: Any) -> list[str]:
        """``com.acme`` (exactly) or ``com.acme.*`` (below it), as 3.9's entry ``namespaces``."""
        items = _string_list(value, "namespaces")
        for pattern in items:
            base = pattern[:-2] if pattern.endswith(".*") else pattern
            if not base:
                raise PolicyEntryInvalid(
                    f"The namespace pattern '{pattern}' is invalid.",
                    "Use a namespace like 'com.acme' or a pattern like 'com.acme.*'.",
                )
            check_namespace(base, PolicyEntryInvalid)
        return _unique(items)

    def importable(self, value: Any) -> str:
        if value not in IMPORTABLE_TYPES:
            raise PolicyEntryInvalid(
                f"The importable type '{value}' is invalid.",
                "It must be one of 'implicit', 'explicit' or 'never'.",
            )
        return str(value)

    def allowed_additions(self, value: Any) -> list[str]:
        items = _string_list(value, "allowedAdditions")
        for item in items:
            if item not in ALLOWED_ADDITIONS:
                raise PolicyEntryInvalid(
                    f"The allowed addition '{item}' is invalid.",
                    "Allowed additions are 'subjects', 'resources' and 'namespaces'.",
                )
        return _unique(items)

    def references(self, value: Any) -> list[dict[str, str]]:
        if not isinstance(value, list):
            raise JsonInvalid("The 'references' of a PolicyEntry must be a JSON array.")
        out: list[dict[str, str]] = []
        for ref in value:
            if not isinstance(ref, dict) or set(ref) - {"import", "entry"} or "entry" not in ref:
                raise PolicyEntryInvalid(
                    f"The entry reference '{ref}' is invalid.",
                    'A reference is {"entry": "<label>"} or {"import": "<policyId>", "entry": "<label>"}.',
                )
            normalized: dict[str, str] = {}
            if "import" in ref:
                normalized["import"] = check_import_id(self.policy_id, ref["import"])
            normalized["entry"] = check_label(ref["entry"])
            out.append(normalized)
        return out

    def imports(self, value: Any) -> dict[str, Any]:
        obj = _object(value, "The 'imports' of a Policy")
        if len(obj) > MAX_IMPORTS:
            raise too_many_imports(len(obj))
        return {check_import_id(self.policy_id, pid): self.policy_import(imp) for pid, imp in obj.items()}

    def policy_import(self, value: Any) -> dict[str, Any]:
        obj = _object(value, "A Policy import")
        out: dict[str, Any] = {}
        if obj.get("entries") is not None:
            out["entries"] = self.import_entries(obj["entries"])
        if obj.get("transitiveImports") is not None:
            out["transitiveImports"] = self.transitive_imports(obj["transitiveImports"])
        return out

    def import_entries(self, value: Any) -> list[str]:
        return _unique([check_label(label) for label in _string_list(value, "entries")])

    def transitive_imports(self, value: Any) -> list[str]:
        return _unique(
            [check_import_id(self.policy_id, pid) for pid in _string_list(value, "transitiveImports")]
        )


def too_many_imports(count: int) -> PolicyImportsTooLarge:
    return PolicyImportsTooLarge(
        f"The number of policy imports ({count}) exceeds the maximum of {MAX_IMPORTS}.",
        "Reduce the number of policy imports.",
    )


def _round_up(moment: datetime, granularity: timedelta) -> datetime:
    step = granularity.total_seconds()
    seconds = moment.timestamp()
    return datetime.fromtimestamp(math.ceil(seconds / step) * step, UTC)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JsonInvalid(f"{what} must be a JSON object.")
    return value


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise JsonInvalid(f"The '{name}' must be a JSON array of strings.")
    return list(value)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _permissions(key: str, resource: Mapping[str, Any], field: str) -> list[str]:
    value = resource.get(field, [])
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(p, str) and p in PERMISSIONS for p in value):
        raise PolicyEntryInvalid(
            f"The '{field}' of the Resource '{key}' is invalid.",
            "Policy entry does not contain any known permission like 'READ' or 'WRITE'",
        )
    return _unique(value)


# ----------------------------------------------------------------------------------------------- whole policy
def check_policy(policy_id: str, policy: Mapping[str, Any]) -> None:
    """What holds for every stored policy whatever the command: size, number of imports and entry references
    (no self or duplicate references, local targets exist and are importable, imports are declared)."""
    check_policy_size(dict(policy))
    imports = policy.get("imports") or {}
    if len(imports) > MAX_IMPORTS:
        raise too_many_imports(len(imports))
    entries: Mapping[str, Any] = policy.get("entries") or {}
    for label, entry in entries.items():
        seen: set[tuple[str | None, str]] = set()
        for ref in entry.get("references") or []:
            target = ref.get("entry")
            imported = ref.get("import")
            key = (imported, target)
            problem: str | None = None
            if key in seen:
                problem = f"The reference to entry '{target}' is listed twice."
            elif imported is None and target == label:
                problem = "An entry must not reference itself."
            elif imported is None and target not in entries:
                problem = f"Local reference targets entry '{target}' which does not exist in the policy."
            elif imported is None and entries[target].get("importable") == "never":
                problem = (
                    f"Local reference targets entry '{target}' which is marked importable=never and cannot be "
                    "referenced."
                )
            elif imported is not None and imported not in imports:
                problem = f"Import reference targets policy '{imported}' which is not declared in imports."
            seen.add(key)
            if problem is not None:
                raise PolicyEntryInvalid(
                    f"The references of PolicyEntry '{label}' on Policy '{policy_id}' are invalid.", problem
                )
