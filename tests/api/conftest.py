"""In-process HTTP tests through ``httpx.ASGITransport``, run against both storage backends."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ditto_compat.api.app import create_app
from ditto_compat.settings import Settings


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


DITTO = basic("ditto", "ditto")


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "mongo":
        mongo_uri: str = request.getfixturevalue("mongo_uri")
        return Settings(
            data_dir=str(tmp_path), mongo_uri=mongo_uri, mongo_database=f"t{uuid.uuid4().hex[:12]}"
        )
    return Settings(data_dir=str(tmp_path))


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=DITTO) as c:
            yield c


def new_id(namespace: str = "org.test") -> str:
    return f"{namespace}:{uuid.uuid4().hex[:10]}"
