"""Resolution of a policy's imports and entry references (``basic-policy`` "Policy imports", "Entry
references", "Transitive import resolution", "Effective policy view") and the lockout sanity check (Ditto's
``PoliciesValidator``, inventory §4 "Lockout checks").

Everything here is pure: the caller loads the policies (``missing_policy_ids`` says which, round by round)
and hands them in as a mapping ``policy id -> policy JSON`` (``None`` for a missing or deleted policy).

How a policy ``P`` resolves, as the docs describe it:

- ``P``'s own entries come first, each with its ``references`` merged in (below).
- For each import ``I`` of ``P`` (in declaration order) the entries of ``I`` *as ``P`` sees it* follow, labelled
  ``imported-<I>-<label>``: an entry is taken if its ``importable`` is ``implicit`` (the default), or
  ``explicit`` and listed in ``imports.<I>.entries``; ``never`` entries never.
- ``I`` as ``P`` sees it is ``I`` resolved by the same rules, except that of ``I``'s own imports only those
  listed in ``P``'s ``imports.<I>.transitiveImports`` are followed (a whitelist; ids that ``I`` does not import
  are ignored). Without the whitelist ``I``'s import references resolve to nothing.
- Cycles are cut by never following a policy already on the current import chain (which includes ``P``
  itself); chains end after ``MAX_IMPORT_DEPTH`` levels, keeping what was resolved so far.

Entry references (one level deep): ``{"entry": L}`` takes the *raw* own content of ``P``'s entry ``L`` (its
own references are not followed); ``{"import": I, "entry": L}`` takes entry ``L`` of ``I`` as ``P`` sees it
(so with ``I``'s references resolved where ``transitiveImports`` opened the way). Referenced entries marked
``importable: never`` are skipped. Subjects, resources and namespaces merge additively: for a subject id
present in several places the first-listed reference's instance wins, then the entry's own; resource
permissions are unioned (a referenced revoke always survives). ``allowedAdditions`` of the referenced entries
(intersected across them; absent = no restriction) filters what kinds of the referencing entry's *own*
content survive. A resolved entry has no ``references`` any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ditto_compat.errors import JsonPointerInvalid
from ditto_compat.model.pointer import parse_pointer

IMPORTED_PREFIX = "imported"
MAX_IMPORT_DEPTH = 10
ADDITION_KINDS = ("subjects", "resources", "namespaces")

Entries = list[tuple[str, dict[str, Any]]]
_Memo = dict[tuple[str, frozenset[str] | None, int], Entries]


def imported_label(policy_id: str, label: str) -> str:
    """The label an imported entry gets: ``imported-<importedPolicyId>-<originalLabel>`` (Ditto's
    ``ImmutableImportedLabel``; opaque, since policy ids may contain ``-`` themselves)."""
    return f"{IMPORTED_PREFIX}-{policy_id}-{label}"


def import_ids(policy: Mapping[str, Any]) -> list[str]:
    """The ids in ``policy["imports"]``, in declaration order."""
    return list(_imports(policy))


def resolve_entries(
    policy: Mapping[str, Any], imported: Mapping[str, Mapping[str, Any] | None]
) -> list[tuple[str, dict[str, Any]]]:
    """The effective ``(label, entry)`` list of ``policy``: own entries with references merged, then the
    imported ones (see the module docstring). ``imported`` holds every policy loaded so far by id; policies
    that are absent or ``None`` contribute nothing.

    Labels are unique except when an import chain produces the same label twice; both entries are kept
    (they both count for enforcement), ``resolved_view`` keeps the first."""
    own_id = policy.get("policyId")
    chain = (own_id,) if isinstance(own_id, str) else ()
    return _resolve(policy, imported, None, 0, chain, {})


def resolved_view(
    policy: Mapping[str, Any], imported: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """``policy-view=resolved``: the policy with its ``entries`` replaced by the resolved ones (on a label
    collision the first-encountered entry takes precedence, as ``basic-policy`` documents)."""
    entries: dict[str, Any] = {}
    for label, entry in resolve_entries(policy, imported):
        entries.setdefault(label, entry)
    return {**policy, "entries": entries}


def required_policy_ids(
    policy: Mapping[str, Any], loaded: Mapping[str, Mapping[str, Any] | None]
) -> set[str]:
    """Every policy id that resolving ``policy`` would look at, as far as ``loaded`` already tells: the direct
    imports, and the ``transitiveImports`` of those that are loaded, and so on. Load the missing ones and ask
    again until nothing is missing (see ``missing_policy_ids``); at most ``MAX_IMPORT_DEPTH`` rounds."""
    own_id = policy.get("policyId")
    chain = (own_id,) if isinstance(own_id, str) else ()
    found: set[str] = set()
    _collect(policy, loaded, None, 0, chain, found, set())
    return found


def missing_policy_ids(policy: Mapping[str, Any], loaded: Mapping[str, Mapping[str, Any] | None]) -> set[str]:
    """The ids of ``required_policy_ids`` that are not keys of ``loaded`` yet (a ``None`` value means "known
    to be missing" and is not asked for again)."""
    return {pid for pid in required_policy_ids(policy, loaded) if pid not in loaded}


def check_policy_lockout(
    policy: Mapping[str, Any], resolved_entries: Iterable[tuple[str, Mapping[str, Any]]]
) -> bool:
    """Ditto's ``PoliciesValidator``: ``True`` when the policy is acceptable, i.e. it has imports, or some subject
    without ``expiry`` is granted ``WRITE`` on ``policy:/`` and no entry revokes ``WRITE`` on ``policy:/`` from
    it. Subjects are compared by id (Ditto compares the whole subject JSON, which lets a revoke of the same id
    with another ``type`` slip through and lock everybody out)."""
    if _imports(policy):
        return True
    granted: set[str] = set()
    revoked: set[str] = set()
    for _label, entry in resolved_entries:
        if not isinstance(entry, Mapping):
            continue
        grants, revokes = _root_policy_write(entry.get("resources"))
        subjects = entry.get("subjects")
        if not isinstance(subjects, Mapping):
            continue
        if grants:
            granted.update(
                sid
                for sid, subject in subjects.items()
                if not (isinstance(subject, Mapping) and subject.get("expiry") is not None)
            )
        if revokes:
            revoked.update(subjects)
    return bool(granted - revoked)


# ---------------------------------------------------------------------------------------------- internals


def _resolve(
    policy: Mapping[str, Any],
    loaded: Mapping[str, Mapping[str, Any] | None],
    followed: frozenset[str] | None,
    depth: int,
    chain: tuple[str, ...],
    memo: _Memo,
) -> Entries:
    """``policy`` resolved, following only the imports in ``followed`` (``None``: all)."""
    views: dict[str, Entries] = {}
    declarations = _imports(policy)
    if depth < MAX_IMPORT_DEPTH:
        for pid, declaration in declarations.items():
            if (followed is not None and pid not in followed) or pid in chain:
                continue
            doc = loaded.get(pid)
            if not isinstance(doc, Mapping):
                continue
            transitive = frozenset(_strings(declaration.get("transitiveImports")))
            # the same policy may be reached along several chains; resolving it once per (whitelist, depth)
            # keeps a diamond-shaped import graph from growing exponentially
            memo_key = (pid, transitive, depth + 1)
            view = memo.get(memo_key)
            if view is None:
                view = _resolve(doc, loaded, transitive, depth + 1, (*chain, pid), memo)
                memo[memo_key] = view
            views[pid] = view

    own = _entries(policy)
    result: Entries = [(label, _with_references(entry, own, views)) for label, entry in own.items()]
    # An entry reached along several import paths is one and the same object (views are shared); keeping it
    # once (under the first label) keeps the entry count linear in the number of policies instead of growing
    # with the number of paths, and changes nothing for enforcement.
    taken: set[int] = set()
    for pid, view in views.items():
        listed = set(_strings(declarations[pid].get("entries")))
        for label, entry in view:
            if id(entry) in taken:
                continue
            importable = entry.get("importable", "implicit")
            if importable == "implicit" or (importable == "explicit" and label in listed):
                taken.add(id(entry))
                result.append((imported_label(pid, label), entry))
    return result


def _collect(
    policy: Mapping[str, Any],
    loaded: Mapping[str, Mapping[str, Any] | None],
    followed: frozenset[str] | None,
    depth: int,
    chain: tuple[str, ...],
    found: set[str],
    seen: set[tuple[str, frozenset[str], int]],
) -> None:
    """The traversal of ``_resolve``, collecting policy ids instead of entries."""
    if depth >= MAX_IMPORT_DEPTH:
        return
    for pid, declaration in _imports(policy).items():
        if (followed is not None and pid not in followed) or pid in chain:
            continue
        found.add(pid)
        doc = loaded.get(pid)
        transitive = frozenset(_strings(declaration.get("transitiveImports")))
        if not isinstance(doc, Mapping) or not transitive or (pid, transitive, depth + 1) in seen:
            continue
        seen.add((pid, transitive, depth + 1))
        _collect(doc, loaded, transitive, depth + 1, (*chain, pid), found, seen)


def _with_references(
    entry: Mapping[str, Any], own: Mapping[str, Mapping[str, Any]], views: Mapping[str, Entries]
) -> dict[str, Any]:
    resolved = {k: v for k, v in entry.items() if k != "references"}
    references = entry.get("references")
    if not isinstance(references, list) or not references:
        return resolved
    targets: list[Mapping[str, Any]] = []
    for reference in references:
        target = _referenced(reference, own, views)
        if target is not None and target.get("importable") != "never":
            targets.append(target)
    if not targets:
        return resolved

    allowed: set[str] | None = None  # the strictest allowedAdditions across the referenced entries
    for target in targets:
        kinds = target.get("allowedAdditions")
        if isinstance(kinds, list):
            allowed = set(_strings(kinds)) if allowed is None else allowed & set(_strings(kinds))

    def own_part(kind: str) -> Any:
        return entry.get(kind) if allowed is None or kind in allowed else None

    subjects: dict[str, Any] = {}
    for target in targets:
        for sid, subject in _mapping(target.get("subjects")).items():
            subjects.setdefault(sid, subject)  # first-listed reference wins
    own_subjects = _mapping(own_part("subjects"))
    # own order first for readability, but a referenced instance of the same id wins
    resolved["subjects"] = {
        **{sid: subjects.get(sid, subject) for sid, subject in own_subjects.items()},
        **subjects,
    }

    resources: dict[str, dict[str, list[str]]] = {}
    for source in (own_part("resources"), *(target.get("resources") for target in targets)):
        for key, permissions in _mapping(source).items():
            merged = resources.setdefault(key, {"grant": [], "revoke": []})
            if isinstance(permissions, Mapping):
                for effect in ("grant", "revoke"):
                    for permission in _strings(permissions.get(effect)):
                        if permission not in merged[effect]:
                            merged[effect].append(permission)
    resolved["resources"] = resources

    namespaces: list[str] = []
    for source in (own_part("namespaces"), *(target.get("namespaces") for target in targets)):
        for pattern in _strings(source):
            if pattern not in namespaces:
                namespaces.append(pattern)
    if namespaces:
        resolved["namespaces"] = namespaces
    else:
        resolved.pop("namespaces", None)
    return resolved


def _referenced(
    reference: Any, own: Mapping[str, Mapping[str, Any]], views: Mapping[str, Entries]
) -> Mapping[str, Any] | None:
    if not isinstance(reference, Mapping):
        return None
    label = reference.get("entry")
    source = reference.get("import")
    if not isinstance(label, str):
        return None
    if source is None:
        return own.get(label)  # raw content: the referenced entry's own references are not followed
    for candidate, entry in views.get(source, ()) if isinstance(source, str) else ():
        if candidate == label:
            return entry
    return None


def _root_policy_write(resources: Any) -> tuple[bool, bool]:
    """Whether ``resources`` grant / revoke ``WRITE`` on ``policy:/``."""
    grants = revokes = False
    for key, permissions in _mapping(resources).items():
        if not isinstance(permissions, Mapping) or not _is_policy_root(key):
            continue
        grants = grants or "WRITE" in _strings(permissions.get("grant"))
        revokes = revokes or "WRITE" in _strings(permissions.get("revoke"))
    return grants, revokes


def _is_policy_root(key: str) -> bool:
    resource_type, colon, path = key.partition(":")
    if resource_type != "policy" or not colon:
        return False
    try:
        return parse_pointer(path) == ()
    except JsonPointerInvalid:
        return False


def _imports(policy: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    imports = policy.get("imports")
    if not isinstance(imports, Mapping):
        return {}
    return {
        pid: declaration if isinstance(declaration, Mapping) else {}
        for pid, declaration in imports.items()
        if isinstance(pid, str)
    }


def _entries(policy: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        label: entry
        for label, entry in _mapping(policy.get("entries")).items()
        if isinstance(label, str) and isinstance(entry, Mapping)
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if isinstance(v, str)]
