"""Shared fixtures: databases (SQLite always, PostgreSQL when VIDGATE_TEST_PG_URL is set), settings, a
gateway served over real loopback HTTP, and API keys."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.file_order import longest_files_first
from tests.helpers import scripted_channel
from vidgate.clock import Clock
from vidgate.config import Settings, WorkerSettings
from vidgate.private_files import make_private_file
from vidgate.testing.databases import create_pg_database, drop_pg_database

PG_URL = os.environ.get("VIDGATE_TEST_PG_URL")
# CI sets this so that a missing PostgreSQL fails the run instead of silently skipping half the suite.
PG_REQUIRED = os.environ.get("VIDGATE_TEST_REQUIRE_PG") == "1"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = longest_files_first(items, config.rootpath)


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment() -> Iterator[None]:
    """Settings come from the tests alone, never from the developer's VIDGATE_* variables."""
    saved = {
        k: v for k, v in os.environ.items() if k.startswith("VIDGATE_") and not k.startswith("VIDGATE_TEST_")
    }
    for k in saved:
        del os.environ[k]
    yield
    os.environ.update(saved)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    if not PG_URL:
        if PG_REQUIRED:
            pytest.fail("VIDGATE_TEST_REQUIRE_PG=1 but VIDGATE_TEST_PG_URL is not set")
        pytest.skip("PostgreSQL tests need VIDGATE_TEST_PG_URL (see scripts/start-postgres)")
    return PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'vidgate.db'}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    url = create_pg_database(admin)
    try:
        yield url
    finally:
        drop_pg_database(admin, url)


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, db_url: str) -> SettingsFactory:
    """Settings for a test gateway: its own data dir and database, the scripted channel, quick worker."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": db_url,
            "auto_migrate": True,
            "secret_key": "test-secret",
            "channels": [scripted_channel(tmp_path / "upstream")],
            "worker": WorkerSettings(lease_seconds=5, idle_poll_seconds=0.05, retry_base_seconds=0.01),
        }
        values.update(overrides)
        return Settings(**values)

    return make


async def create_key(settings: Settings, *, name: str = "test", admin: bool = False) -> str:
    from vidgate.clock import SystemClock
    from vidgate.store.db import create_engine
    from vidgate.store.keys import KeyStore

    engine = create_engine(settings.resolved_database_url)
    try:
        _, plaintext = await KeyStore(engine).create(name=name, is_admin=admin, now=SystemClock().now_ms())
    finally:
        await engine.dispose()
    return plaintext


class Gateway:
    """A running gateway (real uvicorn on loopback) and what a test needs to talk to it."""

    def __init__(self, base_url: str, app: Any, settings: Settings) -> None:
        self.base_url = base_url
        self.app = app
        self.settings = settings

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def new_key(self, name: str = "test") -> str:
        return await create_key(self.settings, name=name)

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)


GatewayFactory = Callable[..., Any]


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database at the newest schema, made once per test process: a gateway on a new SQLite
    file starts from a copy of it instead of running every migration again (0.15 s a gateway)."""
    from vidgate.store.db import upgrade_sync

    path = tmp_path_factory.mktemp("schema") / "vidgate.db"
    upgrade_sync(f"sqlite+aiosqlite:///{path}")
    return path


def start_from_template(settings: Settings, template: Path) -> None:
    """Copy `template` to the settings' SQLite file when it does not exist yet and would be migrated at
    start anyway (the gateway then finds it at head). Every other database is left as it is."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or not settings.should_auto_migrate or not url.database:
        return
    target = Path(url.database)
    if not target.exists():
        make_private_file(target)  # as the gateway would make it: 0600, in a private folder
        shutil.copyfile(template, target)


@pytest.fixture
async def start_gateway(
    make_settings: SettingsFactory, migrated_sqlite: Path
) -> AsyncIterator[GatewayFactory]:
    """`async with start_gateway(run_worker=False, clock=..., **settings) as gw:`"""
    from contextlib import asynccontextmanager

    from vidgate.api.app import create_app
    from vidgate.testing.resolver import PUBLIC_TEST_HOSTS, StaticResolver
    from vidgate.testing.server import bind_loopback, serving

    @asynccontextmanager
    async def start(
        *, run_worker: bool = True, clock: Clock | None = None, resolver: Any = None, **overrides: Any
    ) -> AsyncIterator[Gateway]:
        sock = bind_loopback()
        settings = make_settings(port=sock.getsockname()[1], **overrides)
        start_from_template(settings, migrated_sqlite)
        app = create_app(
            settings,
            run_worker=run_worker,
            clock=clock,
            resolver=resolver or StaticResolver(PUBLIC_TEST_HOSTS),
        )
        async with serving(app, sock) as base_url:
            yield Gateway(base_url, app, settings)

    yield start


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    """A gateway whose embedded worker is OFF: tests drive steps themselves with a Worker.tick()."""
    async with start_gateway(run_worker=False) as gw:
        yield gw


@pytest.fixture
async def api_key(gateway: Gateway) -> str:
    return await gateway.new_key()


@pytest.fixture
async def client(gateway: Gateway, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client(api_key) as c:
        yield c


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Any]:
    """One moto S3 server on loopback for the session (tests/s3.py); each test takes its own bucket."""
    from tests.s3 import running_moto

    with running_moto() as moto:
        yield moto


@pytest.fixture
def s3_settings(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Settings overrides for a gateway whose storage is a fresh bucket on the session's moto server."""
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    settings: dict[str, Any] = moto_server.settings(moto_server.new_bucket())
    return settings


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One redis-server child on loopback for the session (tests/redis_server.py); skips without one
    unless VIDGATE_TEST_REQUIRE_REDIS=1. Tests that count in it call `flush()` first."""
    from tests.redis_server import running_redis

    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server
