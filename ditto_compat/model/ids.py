"""Namespaced entity ids and JSON keys (``basic-namespaces-and-names``).

Ditto's ``RegexPatterns.ID_REGEX``: an optional namespace of dot- or dash-separated Java-identifier-like parts,
a colon, and a name without control characters, ``/`` or characters 0x7F-0xFF; at most 256 characters.
"""

from __future__ import annotations

import re
import uuid
from functools import lru_cache

from ditto_compat.errors import DittoError, JsonKeyInvalid, PolicyIdInvalid, ThingIdInvalid

MAX_ID_LENGTH = 256
DEFAULT_NAMESPACE = "org.eclipse.ditto"

_NAMESPACE = r"(?:[a-zA-Z]\w*)(?:[.-][a-zA-Z]\w*)*"
_NAME = r"[^\x00-\x1F\x7F-\xFF/]+"
_ID_RE = re.compile(rf"(?P<ns>|{_NAMESPACE}):(?P<name>{_NAME})", re.ASCII)
_NAMESPACE_RE = re.compile(rf"(?:|{_NAMESPACE})", re.ASCII)
_KEY_RE = re.compile(r"[^\x00-\x1F\x7F-\xFF/]+")


def is_valid_entity_id(entity_id: str) -> bool:
    return len(entity_id) <= MAX_ID_LENGTH and _valid_id(entity_id)


# the same ids are checked over and over (every message of a device); their length is bounded before
@lru_cache(maxsize=16_384)
def _valid_id(entity_id: str) -> bool:
    return _ID_RE.fullmatch(entity_id) is not None


def check_thing_id(thing_id: str) -> str:
    if not is_valid_entity_id(thing_id):
        raise ThingIdInvalid(f"Thing ID '{thing_id}' is not valid!")
    return thing_id


def check_policy_id(policy_id: str) -> str:
    if not is_valid_entity_id(policy_id):
        raise PolicyIdInvalid(f"Policy ID '{policy_id}' is not valid!")
    return policy_id


def check_namespace(namespace: str, error: type[DittoError] = ThingIdInvalid) -> str:
    if _NAMESPACE_RE.fullmatch(namespace) is None:
        raise error(f"The namespace '{namespace}' is not valid!")
    return namespace


def namespace_of(entity_id: str) -> str:
    return entity_id.split(":", 1)[0]


def name_of(entity_id: str) -> str:
    return entity_id.split(":", 1)[1]


def generate_thing_id(namespace: str | None) -> str:
    """A new id as ``POST /things`` creates it: the given (or default) namespace and a random UUID."""
    ns = DEFAULT_NAMESPACE if namespace is None else namespace
    return f"{ns}:{uuid.uuid4()}"


def is_valid_key(key: str) -> bool:
    return _KEY_RE.fullmatch(key) is not None


def check_key(key: str) -> str:
    if not is_valid_key(key):
        raise JsonKeyInvalid(f"The JSON key <{key}> is invalid.")
    return key
