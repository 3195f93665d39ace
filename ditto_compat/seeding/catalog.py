"""The example twins of ``seeds/``: one JSON file per domain, expanded into Ditto policies and things.

A domain file holds its ``namespace``, one ``policy`` (subjects written as ``{{ owner }}`` / ``{{ viewer }}``,
filled in at seed time), ``kinds`` (a definition, attributes and features shared by similar things) and
``things`` (an ``id`` within the namespace, a ``kind`` and what differs from it). A thing is its kind
deep-merged with its own fields, so that the files stay short and readable. Vehicles also carry ``routes``
(way-points and stops) for the simulator.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JsonObject = dict[str, Any]

DEFAULT_OWNER = "nginx:ditto"
DEFAULT_VIEWER = "nginx:viewer"
SEEDS_DIR_ENV = "DITTO_COMPAT_SEEDS_DIR"
OWNER_TOKEN = "{{ owner }}"
VIEWER_TOKEN = "{{ viewer }}"


class SeedError(ValueError):
    """A seed file that cannot be read or expanded (the message names the file and the thing)."""


@dataclass(frozen=True)
class Route:
    """A closed path of (latitude, longitude) way-points; ``stops`` are indices of way-points with a stop."""

    name: str
    waypoints: tuple[tuple[float, float], ...]
    stops: frozenset[int] = frozenset()


@dataclass(frozen=True)
class SeedDomain:
    """One domain (``sensors``, ``vehicles``, ...): its policy and its things, ready to PUT."""

    name: str
    namespace: str
    description: str
    policy_id: str
    policy: JsonObject
    things: tuple[JsonObject, ...]
    routes: Mapping[str, Route] = field(default_factory=dict)

    @property
    def thing_ids(self) -> list[str]:
        return [str(thing["thingId"]) for thing in self.things]


def default_seeds_dir() -> Path:
    """``$DITTO_COMPAT_SEEDS_DIR``, else the ``seeds/`` of the source tree, else ``./seeds``."""
    configured = os.environ.get(SEEDS_DIR_ENV)
    if configured:
        return Path(configured)
    in_tree = Path(__file__).resolve().parents[2] / "seeds"
    return in_tree if in_tree.is_dir() else Path("seeds")


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``: objects merge key by key, anything else is replaced (lists too)."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def substitute_subjects(value: Any, owner: str, viewer: str) -> Any:
    """Replaces the subject tokens in keys and strings (policy subjects are object keys)."""
    replacements = {OWNER_TOKEN: owner, VIEWER_TOKEN: viewer}

    def fill(text: str) -> str:
        for token, subject in replacements.items():
            text = text.replace(token, subject)
        return text

    if isinstance(value, dict):
        return {fill(k): substitute_subjects(v, owner, viewer) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_subjects(v, owner, viewer) for v in value]
    if isinstance(value, str):
        return fill(value)
    return value


def _policy(raw: JsonObject, path: Path, owner: str, viewer: str) -> tuple[str, JsonObject]:
    policy = substitute_subjects(raw.get("policy"), owner, viewer)
    if not isinstance(policy, dict) or not isinstance(policy.get("policyId"), str):
        raise SeedError(f"{path}: 'policy' must be an object with a 'policyId'")
    if owner == viewer:
        # One subject in two entries is valid Ditto, but the read-only entry would then only add confusion.
        policy["entries"] = {k: v for k, v in policy.get("entries", {}).items() if k != "viewer"}
    policy_id = str(policy.pop("policyId"))
    return policy_id, policy


def _things(raw: JsonObject, path: Path, namespace: str, policy_id: str) -> list[JsonObject]:
    kinds: Mapping[str, JsonObject] = raw.get("kinds", {})
    things: list[JsonObject] = []
    seen: set[str] = set()
    for entry in raw.get("things", []):
        name = entry.get("id")
        kind_name = entry.get("kind")
        if not isinstance(name, str) or not name:
            raise SeedError(f"{path}: a thing without an 'id': {entry!r}")
        if kind_name is not None and kind_name not in kinds:
            raise SeedError(f"{path}: thing {name!r} has unknown kind {kind_name!r}")
        if name in seen:
            raise SeedError(f"{path}: thing {name!r} is listed twice")
        seen.add(name)
        kind = kinds.get(kind_name, {}) if kind_name is not None else {}
        own = {k: v for k, v in entry.items() if k not in ("id", "kind")}
        thing: JsonObject = {"thingId": f"{namespace}:{name}", "policyId": policy_id}
        thing.update(deep_merge(kind, own))
        things.append(thing)
    return things


def _routes(raw: JsonObject) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for name, spec in raw.get("routes", {}).items():
        points = tuple((float(lat), float(lon)) for lat, lon in spec["waypoints"])
        routes[name] = Route(name, points, frozenset(int(i) for i in spec.get("stops", ())))
    return routes


def load_domain(path: Path, *, owner: str = DEFAULT_OWNER, viewer: str = DEFAULT_VIEWER) -> SeedDomain:
    """Reads and expands one domain file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedError(f"cannot read {path}: {exc}") from exc
    namespace = raw.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        raise SeedError(f"{path}: 'namespace' is missing")
    policy_id, policy = _policy(raw, path, owner, viewer)
    return SeedDomain(
        name=str(raw.get("domain") or path.stem),
        namespace=namespace,
        description=str(raw.get("description", "")),
        policy_id=policy_id,
        policy=policy,
        things=tuple(_things(raw, path, namespace, policy_id)),
        routes=_routes(raw),
    )


def load_catalog(
    seeds_dir: Path | None = None,
    *,
    only: Iterable[str] | None = None,
    owner: str = DEFAULT_OWNER,
    viewer: str = DEFAULT_VIEWER,
) -> list[SeedDomain]:
    """Every ``*.json`` domain of ``seeds_dir`` (sorted by file name), or only those named in ``only``
    (by domain name or namespace); an unknown name is an error, so that a typo does not seed nothing."""
    directory = seeds_dir or default_seeds_dir()
    files = sorted(directory.glob("*.json"))
    if not files:
        raise SeedError(f"no seed files (*.json) in {directory}")
    domains = [load_domain(path, owner=owner, viewer=viewer) for path in files]
    if only is None:
        return domains
    wanted = [name.strip() for name in only if name.strip()]
    known = {d.name for d in domains} | {d.namespace for d in domains}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SeedError(
            f"unknown domain(s) {', '.join(unknown)}; known: {', '.join(d.name for d in domains)}"
        )
    return [d for d in domains if d.name in wanted or d.namespace in wanted]


def parse_only(text: str | None) -> Sequence[str] | None:
    """``--only sensors,vehicles`` as a list (None: everything)."""
    if not text:
        return None
    return [part for part in (p.strip() for p in text.split(",")) if part]
