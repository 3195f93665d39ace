"""What the search index keeps about a policy (inventory §3 "Search and policies").

The database narrows a search to Things whose policy names one of the caller's subjects as a possible reader;
Things of a *uniform* policy, where every such reader may read every part of every Thing, need nothing more.
For the others the search verifies each hit against the enforcer and re-evaluates the filter on the caller's
READ view, so that a predicate on a field the caller cannot read matches nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ditto_compat.domain.enforcer import READ


def search_readers(entries: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[tuple[str, ...], bool]:
    """``(subjects, uniform)`` for the resolved entries of a policy.

    ``subjects``: every subject of an entry that grants READ on some ``thing:`` resource (a superset of who
    may read something: the enforcer decides the rest). ``uniform``: all of them are granted READ on
    ``thing:/`` itself, nothing revokes READ on a ``thing:`` resource, and no entry is limited to namespaces
    or has subjects that expire — so the database's answer needs no further check.
    """
    subjects: dict[str, None] = {}
    root_readers: set[str] = set()
    uniform = True
    for _label, entry in entries:
        resources = entry.get("resources") or {}
        entry_subjects = entry.get("subjects") or {}
        if entry.get("namespaces"):
            uniform = False
        reads_root = False
        reads_any = False
        for key, rule in resources.items():
            if not isinstance(key, str) or not key.startswith("thing:") or not isinstance(rule, Mapping):
                continue
            path = key[len("thing:") :].strip("/")
            if READ in (rule.get("revoke") or []):
                uniform = False
            if READ in (rule.get("grant") or []):
                reads_any = True
                if path == "":
                    reads_root = True
                else:
                    uniform = False
        if not reads_any:
            continue
        for subject, details in entry_subjects.items():
            subjects[subject] = None
            if isinstance(details, Mapping) and details.get("expiry"):
                uniform = False
            if reads_root:
                root_readers.add(subject)
    if any(s not in root_readers for s in subjects):
        uniform = False
    return tuple(subjects), uniform
