"""Policy evaluation (``basic-policy`` "Grant and Revoke some Permission", "Namespaces", "Expiring Policy
subjects"; ``basic-auth-checkpermissions``), Ditto's ``TrieBasedPolicyEnforcer`` (inventory §4
"Evaluation algorithm").

Ditto builds a trie keyed ``[type, seg1, seg2, ...]`` and pushes weighted grant/revoke sets down (inherited trie)
and up (bottom-up grant / revoke tries). The weights only ever serve one comparison, so this module keeps the
raw trie and evaluates the equivalent rule directly:

- ``has``: walking the resource path from the deepest trie node upwards, the first node that mentions any of the
  caller's subjects for the permission decides; a revoke of any of them there beats a grant there. (This is
  exactly Ditto's "max grant weight > max revoke weight": the deepest mention carries the largest weight.)
- ``has_unrestricted`` (Ditto's bottom-up revoke trie): ``has`` at the resource and none of the caller's
  subjects revoked anywhere strictly below it.
- ``has_partial`` (Ditto's bottom-up grant trie): ``has`` at the resource or one of the caller's subjects
  granted (and not revoked at that same node) anywhere strictly below it.

Per trie node and permission the subject sets are precomputed once (``compile``), and so are the unions of
what is granted and revoked below each node, so a query walks the path once and does a few set
intersections; the READ view skips whole subtrees where nothing below can change the decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ditto_compat.errors import JsonPointerInvalid, PolicyResourceInvalid
from ditto_compat.model.pointer import MISSING, parse_pointer

READ = "READ"
WRITE = "WRITE"
EXECUTE = "EXECUTE"

RESOURCE_TYPES = ("thing", "policy", "message")

ResourceKey = tuple[str, ...]
# (revoked, granted and not revoked at the same node) for one permission at one node
_Rules = tuple[frozenset[str], frozenset[str]]


class _Node:
    __slots__ = ("children", "granted_below", "revoked_below", "rules")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.rules: dict[str, _Rules] = {}
        # permission -> every subject granted (resp. revoked) at some node strictly below this one
        self.granted_below: dict[str, frozenset[str]] = {}
        self.revoked_below: dict[str, frozenset[str]] = {}


class Enforcer:
    """Compiled once per policy revision (and the revisions of its imports), then asked many times.

    ``valid_until`` is the earliest ``expiry`` of a subject that was still valid at compile time: a cached
    enforcer must be compiled again once that moment has passed, because Ditto drops the subject then.
    """

    __slots__ = ("_root", "valid_until")

    def __init__(self, root: _Node, valid_until: datetime | None) -> None:
        self._root = root
        self.valid_until = valid_until

    # ------------------------------------------------------------------------------------------ compile

    @classmethod
    def compile(
        cls,
        entries: Iterable[tuple[str, Mapping[str, Any]]],
        *,
        namespace: str | None = None,
        now: datetime | None = None,
    ) -> Enforcer:
        """``entries`` are ``(label, entry JSON)`` of the policy and of everything it imports, already
        resolved. Entries whose ``namespaces`` do not match ``namespace`` and subjects whose ``expiry`` is
        not after ``now`` (default: the current time) are left out, with their grants and their revokes.

        ``namespace=None`` (no entity namespace known) matches no pattern, so namespace-restricted entries are
        left out then. Resource keys must be ``<type>:<json pointer>``; keys without ``:`` cannot pass Ditto's
        write-time validation and are ignored here.
        """
        moment = _aware(now) if now is not None else datetime.now(UTC)
        raw: dict[ResourceKey, dict[str, tuple[set[str], set[str]]]] = {}
        valid_until: datetime | None = None
        for _label, entry in entries:
            if not isinstance(entry, Mapping) or not namespace_applies(entry.get("namespaces"), namespace):
                continue
            subjects: list[str] = []
            for subject_id, subject in _items(entry.get("subjects")):
                expiry = _expiry_of(subject)
                if expiry is _INVALID:
                    continue  # cannot be stored through Ditto's validation; never trust it with access
                if isinstance(expiry, datetime):
                    if expiry <= moment:
                        continue
                    valid_until = expiry if valid_until is None else min(valid_until, expiry)
                subjects.append(subject_id)
            if not subjects:
                continue
            for resource, permissions in _items(entry.get("resources")):
                key = _policy_resource_key(resource)
                if key is None or not isinstance(permissions, Mapping):
                    continue
                per_permission = raw.setdefault(key, {})
                for permission in _strings(permissions.get("grant")):
                    per_permission.setdefault(permission, (set(), set()))[0].update(subjects)
                for permission in _strings(permissions.get("revoke")):
                    per_permission.setdefault(permission, (set(), set()))[1].update(subjects)
        root = _Node()
        for key, per_permission in raw.items():
            node = root
            for segment in key:
                child = node.children.get(segment)
                if child is None:
                    child = node.children[segment] = _Node()
                node = child
            for permission, (granted, revoked) in per_permission.items():
                # revoke beats grant for the same subject at the same node (Ditto's GrantRevokeIndex.overrideBy)
                node.rules[permission] = (frozenset(revoked), frozenset(granted - revoked))
        _summarize(root)
        return cls(root, valid_until)

    # ------------------------------------------------------------------------------------------ queries

    def has(self, subjects: Sequence[str], resource: str, permissions: Iterable[str]) -> bool:
        """Plain evaluation at ``resource`` (``"thing:/attributes/a"``): the most specific rule wins.

        Several permissions are evaluated one by one and must all be allowed; no permissions -> ``False``.
        """
        wanted = _permissions(permissions)
        if not wanted or not subjects:
            return False
        nodes = self._nodes(_resource_key(resource))
        return all(_decide(nodes, permission, subjects) for permission in wanted)

    def has_unrestricted(self, subjects: Sequence[str], resource: str, permissions: Iterable[str]) -> bool:
        """Granted at ``resource`` and not revoked anywhere below it (modify, delete, create, checkPermissions)."""
        wanted = _permissions(permissions)
        if not wanted or not subjects:
            return False
        key = _resource_key(resource)
        nodes = self._nodes(key)
        exact = nodes[-1] if nodes and len(nodes) == len(key) else None
        for permission in wanted:
            if not _decide(nodes, permission, subjects):
                return False
            if exact is not None:
                below = exact.revoked_below.get(permission)
                if below is not None and not below.isdisjoint(subjects):
                    return False
        return True

    def has_partial(self, subjects: Sequence[str], resource: str, permissions: Iterable[str]) -> bool:
        """Granted at ``resource`` or anywhere below it (retrieve: may the caller see any part?)."""
        wanted = _permissions(permissions)
        if not wanted or not subjects:
            return False
        key = _resource_key(resource)
        nodes = self._nodes(key)
        exact = nodes[-1] if nodes and len(nodes) == len(key) else None
        for permission in wanted:
            if exact is not None:
                below = exact.granted_below.get(permission)
                if below is not None and not below.isdisjoint(subjects):
                    continue
            if not _decide(nodes, permission, subjects):
                return False
        return True

    def readable_by(self, subjects: Sequence[str], resource: str) -> bool:
        """May ``subjects`` see any part of ``resource``? (event routing: partial READ)"""
        return self.has_partial(subjects, resource, (READ,))

    def candidate_subjects(self, resource: str, permission: str = READ) -> frozenset[str]:
        """Every subject that is granted ``permission`` on the path to ``resource`` or anywhere below it.

        A necessary condition, not a sufficient one: a caller can only pass ``has_partial`` (and so ``has`` and
        ``has_unrestricted``) if one of its subjects is in this set. Whether it actually passes depends on all
        its subjects together (a revoke of one of them can win), so use this to skip subscribers cheaply and
        ask ``has_partial`` for the rest.
        """
        key = _resource_key(resource)
        nodes = self._nodes(key)
        found: set[str] = set()
        for node in nodes:
            rules = node.rules.get(permission)
            if rules is not None:
                found.update(rules[1])
        if nodes and len(nodes) == len(key):
            found.update(nodes[-1].granted_below.get(permission, ()))
        return frozenset(found)

    def read_view(self, subjects: Sequence[str], resource: str, value: Any) -> Any:
        """``value`` (the JSON found at ``resource``) reduced leaf by leaf to what ``subjects`` may READ;
        objects survive if non-empty after filtering or READ-granted themselves. Returns ``MISSING``
        (``ditto_compat.model.pointer.MISSING``) when nothing is readable.

        Arrays are leaves. The result shares unchanged subtrees with ``value``; only its top level is a fresh
        object, so callers may add keys (``thingId``, special fields) to it but must not mutate deeper.
        """
        if not subjects:
            return MISSING
        key = _resource_key(resource)
        nodes = self._nodes(key)
        allowed = _decide(nodes, READ, subjects)
        if not nodes or len(nodes) < len(key):
            # the resource lies below every rule: one decision holds for the whole value
            result = value if allowed else MISSING
        else:
            result = _view(nodes[-1], allowed, subjects, value)
        if result is value and isinstance(value, dict):
            return dict(value)
        return result

    # ------------------------------------------------------------------------------------------ internals

    def _nodes(self, key: ResourceKey) -> list[_Node]:
        """The trie nodes on ``key`` from the type node down, as far as the trie reaches."""
        nodes: list[_Node] = []
        node = self._root
        for segment in key:
            child = node.children.get(segment)
            if child is None:
                break
            nodes.append(child)
            node = child
        return nodes


def parse_resource(resource: str) -> ResourceKey:
    """``"thing:/features/a"`` -> ``("thing", "features", "a")``, validated as Ditto validates the ``resource``
    of a ``checkPermissions`` request: the type is ``thing``, ``policy`` or ``message`` and the path a JSON
    pointer. Raises ``PolicyResourceInvalid``."""
    key = _resource_key(resource)
    if key[0] not in RESOURCE_TYPES:
        raise PolicyResourceInvalid(f"The resource <{resource}> is invalid.")
    return key


def namespace_applies(patterns: Any, namespace: str | None) -> bool:
    """``basic-policy`` "Namespaces": no or empty ``namespaces`` -> every namespace; ``com.acme`` matches exactly
    ``com.acme``; ``com.acme.*`` matches ``com.acme.x`` and deeper but not ``com.acme`` itself
    (Ditto's ``PolicyEntryNamespaces.matches``)."""
    if not patterns or not isinstance(patterns, list | tuple):
        return True
    if namespace is None:
        return False
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        if pattern.endswith(".*"):
            if namespace.startswith(pattern[:-1]):  # "com.acme.*" -> prefix "com.acme."
                return True
        elif namespace == pattern:
            return True
    return False


def _decide(nodes: list[_Node], permission: str, subjects: Sequence[str]) -> bool:
    for node in reversed(nodes):
        rules = node.rules.get(permission)
        if rules is None:
            continue
        revoked, granted = rules
        if not revoked.isdisjoint(subjects):
            return False
        if not granted.isdisjoint(subjects):
            return True
    return False


def _view(node: _Node, allowed: bool, subjects: Sequence[str], value: Any) -> Any:
    """Ditto's ``PolicyTrie.buildJsonView`` with the JSON aligned to ``node`` (``allowed``: READ there)."""
    # Nothing below can change the decision for these subjects: take or drop the subtree as a whole.
    if allowed:
        revoked_below = node.revoked_below.get(READ)
        if revoked_below is None or revoked_below.isdisjoint(subjects):
            return value
    else:
        granted_below = node.granted_below.get(READ)
        if granted_below is None or granted_below.isdisjoint(subjects):
            return MISSING
    if not isinstance(value, dict):
        return value if allowed else MISSING
    children = node.children
    out: dict[str, Any] = {}
    for key, item in value.items():
        child = children.get(key)
        if child is None:
            if allowed:
                out[key] = item
            continue
        child_allowed = allowed
        rules = child.rules.get(READ)
        if rules is not None:
            revoked, granted = rules
            if not revoked.isdisjoint(subjects):
                child_allowed = False
            elif not granted.isdisjoint(subjects):
                child_allowed = True
        kept = _view(child, child_allowed, subjects, item)
        if kept is not MISSING:
            out[key] = kept
    if out or allowed:
        return out
    return MISSING


def _summarize(node: _Node) -> None:
    """Fill ``granted_below`` / ``revoked_below`` bottom-up."""
    if not node.children:
        return
    granted: dict[str, list[frozenset[str]]] = {}
    revoked: dict[str, list[frozenset[str]]] = {}
    for child in node.children.values():
        _summarize(child)
        for permission, (child_revoked, child_granted) in child.rules.items():
            if child_granted:
                granted.setdefault(permission, []).append(child_granted)
            if child_revoked:
                revoked.setdefault(permission, []).append(child_revoked)
        for permission, below in child.granted_below.items():
            granted.setdefault(permission, []).append(below)
        for permission, below in child.revoked_below.items():
            revoked.setdefault(permission, []).append(below)
    node.granted_below = {permission: _union(sets) for permission, sets in granted.items()}
    node.revoked_below = {permission: _union(sets) for permission, sets in revoked.items()}


def _union(sets: list[frozenset[str]]) -> frozenset[str]:
    # share the child's set when there is only one, so a long chain of single children costs one set
    return sets[0] if len(sets) == 1 else frozenset().union(*sets)


@lru_cache(maxsize=8192)
def _resource_key(resource: str) -> ResourceKey:
    """Parse ``<type>:<json pointer>``; cached because the same few resources are asked on every request."""
    resource_type, colon, path = resource.partition(":")
    if not colon or not resource_type:
        raise PolicyResourceInvalid(f"The resource <{resource}> is invalid.")
    try:
        return (resource_type, *parse_pointer(path))
    except JsonPointerInvalid as exc:
        raise PolicyResourceInvalid(f"The resource <{resource}> is invalid.") from exc


def _policy_resource_key(resource: str) -> ResourceKey | None:
    """A resource key as stored in a policy. Empty keys inside the path (``a//b``) cannot pass Ditto's
    validation; they are skipped here rather than dropping the rule, since dropping a revoke would widen access."""
    resource_type, colon, path = resource.partition(":")
    if not colon or not resource_type:
        return None
    try:
        return (resource_type, *parse_pointer(path))
    except JsonPointerInvalid:
        segments = [segment for segment in path.split("/") if segment]
        return (resource_type, *parse_pointer("/" + "/".join(segments)))


class _Invalid:
    __slots__ = ()


_INVALID = _Invalid()


def _expiry_of(subject: Any) -> datetime | _Invalid | None:
    if not isinstance(subject, Mapping):
        return None
    expiry = subject.get("expiry")
    if expiry is None:
        return None
    if not isinstance(expiry, str):
        return _INVALID
    try:
        return _aware(datetime.fromisoformat(expiry))
    except ValueError:
        return _INVALID


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _items(value: Any) -> Iterable[tuple[str, Any]]:
    if not isinstance(value, Mapping):
        return ()
    return ((k, v) for k, v in value.items() if isinstance(k, str))


def _strings(value: Any) -> Iterable[str]:
    if not isinstance(value, list | tuple):
        return ()
    return (v for v in value if isinstance(v, str))


def _permissions(permissions: Iterable[str]) -> tuple[str, ...]:
    # a bare "READ" would otherwise be read as the permissions "R", "E", "A", "D"
    if isinstance(permissions, str):
        return (permissions,)
    return tuple(permissions)
