"""Parsers of short texts that arrive over and over (a device sends the same topic, path and thing id with every
message), cached by their text.

Only texts up to ``max_length`` are kept, so that a cache's memory stays bounded whatever clients send; longer
ones are parsed every time. A text that fails to parse raises and is never kept. The parsed values must be
immutable, since every caller of the same text shares one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps
from typing import TypeVar

T = TypeVar("T")


def cached_by_text(*, max_length: int, maxsize: int) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    def decorate(parse: Callable[[str], T]) -> Callable[[str], T]:
        known = lru_cache(maxsize=maxsize)(parse)

        @wraps(parse)
        def parse_text(text: str) -> T:
            return known(text) if len(text) <= max_length else parse(text)

        return parse_text

    return decorate
