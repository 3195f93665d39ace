"""The Ditto Protocol examples of Ditto's documentation (``protocol/examples/**/generated/*.md``) as test vectors.

They live in the shared reference checkout, outside this repository; tests that need them skip when it is absent.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLES_ROOT = Path(
    os.environ.get("DITTO_PROTOCOL_EXAMPLES", "/work/shared/reference/ditto/protocol-examples")
)
_BLOCK = re.compile(r"```json\n(.*?)```", re.S)


@dataclass(frozen=True)
class Example:
    """One ```json block: its file (relative to the examples root, without ``generated/``), index and JSON."""

    file: str
    index: int
    body: dict[str, Any]

    @property
    def stem(self) -> str:
        return Path(self.file).stem

    @property
    def id(self) -> str:
        return f"{self.file}#{self.index}" if self.index else self.file


def load_examples() -> list[Example]:
    if not EXAMPLES_ROOT.is_dir():
        return []
    out: list[Example] = []
    for path in sorted(EXAMPLES_ROOT.rglob("generated/**/*.md")):
        rel = path.relative_to(EXAMPLES_ROOT).as_posix().replace("generated/", "")
        for index, match in enumerate(_BLOCK.finditer(path.read_text(encoding="utf-8"))):
            out.append(Example(rel, index, json.loads(match.group(1))))
    return out


EXAMPLES = load_examples()


def under(prefix: str) -> list[Example]:
    return [example for example in EXAMPLES if example.file.startswith(prefix)]


_RESPONSE = re.compile(r"response(created|modified)?$")


def is_response(example: Example) -> bool:
    return _RESPONSE.search(example.stem) is not None


def command_of(response: Example) -> Example:
    """The command example a response example answers: ``modifyattributeresponsecreated`` -> ``modifyattribute``."""
    stem = _RESPONSE.sub("", response.stem)
    folder = Path(response.file).parent.as_posix()
    matches = [e for e in EXAMPLES if e.file == f"{folder}/{stem}.md" and e.index == 0]
    assert matches, f"no command example for {response.file}"
    return matches[0]
