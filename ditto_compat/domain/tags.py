"""Entity tags and conditional requests (``httpapi-concepts`` "Conditional requests", RFC 7232 as Ditto applies it).

Shared by Things and Policies: the top-level entity is tagged ``"rev:<revision>"``, a sub-resource by a hash of
its JSON. Only the error codes differ per entity (``things:precondition.failed`` /
``policies:precondition.failed``), so the checks take the error classes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ditto_compat.errors import DittoError, ThingPreconditionFailed, ThingPreconditionNotModified
from ditto_compat.model.headers import CommandHeaders, EntityTagMatcher
from ditto_compat.model.jsonio import canonical
from ditto_compat.model.pointer import MISSING


def revision_tag(revision: int) -> str:
    return f'"rev:{revision}"'


def content_tag(value: Any) -> str:
    """A stable tag for a sub-resource: equal JSON gives an equal tag, across restarts and processes."""
    return '"hash:' + hashlib.blake2b(canonical(value), digest_size=8).hexdigest() + '"'


def check_preconditions(
    headers: CommandHeaders,
    current: str | None,
    *,
    read: bool,
    failed: type[DittoError] = ThingPreconditionFailed,
    not_modified: type[DittoError] = ThingPreconditionNotModified,
    entity: str = "Thing",
) -> None:
    """``If-Match`` then ``If-None-Match``; ``current`` is ``None`` when the resource does not exist.

    A read whose ``If-None-Match`` matches answers 304 (``not_modified``), a write 412 (``failed``)."""
    etag = {"etag": current} if current else None
    if headers.if_match is not None and not headers.if_match.matches(current):
        raise failed(_message("if-match", headers.if_match, current, "to match", entity), headers=etag)
    if headers.if_none_match is not None and headers.if_none_match.matches(current):
        error = not_modified if read else failed
        raise error(
            _message("if-none-match", headers.if_none_match, current, "not to match", entity), headers=etag
        )


def check_value_preconditions(headers: CommandHeaders, current: Any, *, read: bool) -> None:
    """:func:`check_preconditions` for a sub-resource whose JSON is ``current`` (``MISSING``: absent); its tag is
    only computed when the command has a precondition (telemetry has none, and hashing costs)."""
    if headers.if_match is None and headers.if_none_match is None:
        return
    check_preconditions(headers, None if current is MISSING else content_tag(current), read=read)


def _message(
    header: str, matcher: EntityTagMatcher, current: str | None, expectation: str, entity: str
) -> str:
    expected = "*" if matcher.any else ",".join(matcher.tags)
    return (
        f"The comparison of precondition header '{header}' for the requested {entity} resource evaluated to "
        f"false. Expected: '{expected}' {expectation} actual: '{current or ''}'."
    )
