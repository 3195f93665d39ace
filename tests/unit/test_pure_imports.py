"""DESIGN.md: "pure" folders import no asyncio, web framework, database driver or broker client, and nothing
from the adapters; this keeps the Ditto semantics testable as plain functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ditto_compat

PACKAGE_ROOT = Path(ditto_compat.__file__).resolve().parent
PURE_FOLDERS = ("model", "domain", "rql", "protocol")
PURE_FILES = (
    "errors.py",
    # connectivity: the definition, broker messages, placeholders and the mappers but JavaScript's (V8)
    "connectivity/model.py",
    "connectivity/external.py",
    "connectivity/definition.py",
    "connectivity/errors.py",
    "connectivity/placeholders.py",
    *(
        path.relative_to(PACKAGE_ROOT).as_posix()
        for path in sorted((PACKAGE_ROOT / "connectivity" / "mapping").glob("*.py"))
        if path.name != "javascript.py"
    ),
)

FORBIDDEN_TOP_LEVEL = {
    "asyncio",
    "starlette",
    "fastapi",
    "uvicorn",
    "pymongo",
    "sqlite3",
    "httpx",
    "paho",
    "aiokafka",
    "aio_pika",
    "py_mini_racer",
}
FORBIDDEN_INTERNAL = ("ditto_compat.api", "ditto_compat.service", "ditto_compat.persistence")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """The absolute name of ``from <level dots><module> import ...`` inside ``importer``."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imported_modules(source: str, importer: str, *, is_package: bool = False) -> set[str]:
    """Every module a source imports, at any depth of the file (functions, ``if TYPE_CHECKING`` too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, importer, is_package)
            found.add(base)
            # "from ditto_compat import api" imports the module ditto_compat.api
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def violations(modules: set[str]) -> list[str]:
    def forbidden(name: str) -> bool:
        internal = any(name == prefix or name.startswith(prefix + ".") for prefix in FORBIDDEN_INTERNAL)
        return internal or name.split(".")[0] in FORBIDDEN_TOP_LEVEL

    return [name for name in sorted(modules) if forbidden(name)]


def _pure_sources() -> list[Path]:
    files: list[Path] = []
    for folder in PURE_FOLDERS:
        directory = PACKAGE_ROOT / folder
        if directory.is_dir():
            files.extend(sorted(directory.rglob("*.py")))
    files.extend(PACKAGE_ROOT / name for name in PURE_FILES if (PACKAGE_ROOT / name).is_file())
    return files


PURE_SOURCES = _pure_sources()


def test_the_pure_folders_are_found() -> None:
    names = {path.relative_to(PACKAGE_ROOT).as_posix() for path in PURE_SOURCES}
    assert "model/pointer.py" in names
    assert "domain/resources.py" in names
    assert "connectivity/mapping/ditto.py" in names


@pytest.mark.parametrize("path", PURE_SOURCES, ids=lambda p: p.relative_to(PACKAGE_ROOT).as_posix())
def test_pure_module_imports_nothing_impure(path: Path) -> None:
    modules = imported_modules(
        path.read_text(encoding="utf-8"), _module_name(path), is_package=path.name == "__init__.py"
    )
    assert violations(modules) == [], f"{path.relative_to(PACKAGE_ROOT)} imports impure modules"


# ------------------------------------------------------------------------------ the checker checks


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import asyncio.queues",
        "from asyncio import Queue",
        "import starlette.requests as r",
        "from fastapi import FastAPI",
        "import uvicorn",
        "from pymongo import MongoClient",
        "import sqlite3",
        "import httpx",
        "import paho.mqtt.client as mqtt",
        "from aiokafka import AIOKafkaProducer",
        "import aio_pika",
        "from ditto_compat.api.http import app",
        "from ditto_compat import service",
        "import ditto_compat.persistence.ports",
        "from ..api import http",
        "from .. import persistence",
        "def f():\n    import asyncio\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ditto_compat.service.dispatcher import X\n",
    ],
)
def test_the_checker_finds_impure_imports(source: str) -> None:
    modules = imported_modules(source, "ditto_compat.domain.things")
    assert violations(modules), source


@pytest.mark.parametrize(
    "source",
    [
        "import re, uuid, hashlib",
        "from dataclasses import dataclass",
        "import orjson",
        "from ditto_compat.errors import DittoError",
        "from ditto_compat.model.pointer import parse_pointer",
        "from ..model import pointer",
        "from .resources import Kind",
        "import apiary",
        "from ditto_compat.apis import x",
    ],
)
def test_the_checker_accepts_pure_imports(source: str) -> None:
    assert violations(imported_modules(source, "ditto_compat.domain.things")) == []


def test_relative_imports_resolve_against_the_importer() -> None:
    assert "ditto_compat.api.http" in imported_modules("from ..api import http", "ditto_compat.domain.things")
    assert "ditto_compat.domain.resources" in imported_modules(
        "from .resources import Kind", "ditto_compat.domain.x"
    )
    assert "ditto_compat.domain.resources" in imported_modules(
        "from .resources import Kind", "ditto_compat.domain", is_package=True
    )
