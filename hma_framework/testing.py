"""Pytest fixtures and plugin contract checks, for this project and for plugin authors.

Use it from a ``conftest.py``::

    pytest_plugins = ["hma_framework.testing"]

Services come from ``HMA_TEST_REDIS_URL`` and ``HMA_TEST_DATABASE_URL`` when set (a real Redis
and PostgreSQL); otherwise an embedded Redis is started and SQLite is used, so the suite also
passes on a machine with neither. Every test gets an empty Redis database and, on PostgreSQL,
a schema of its own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hma_framework.registry import Registry, make_registry
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import Settings
from hma_framework.store import migrate
from hma_framework.types import ActionHandlerRecord, SignalTypeRecord

TEST_REDIS_ENV = "HMA_TEST_REDIS_URL"
TEST_DATABASE_ENV = "HMA_TEST_DATABASE_URL"


# --- contract checks --------------------------------------------------------------------------


def check_signal_type_record(record: SignalTypeRecord) -> None:
    """Assert a signal type keeps the contract the core relies on."""
    signal_type = record.signal_type
    assert record.name == signal_type.get_name()
    assert record.applies_to(), f"{record.name} applies to no content type"
    examples = signal_type.get_examples()
    assert examples, f"{record.name}.get_examples() is empty: tests and demos need one"
    for example in examples:
        normalized = signal_type.validate_signal_str(example)
        assert signal_type.validate_signal_str(normalized) == normalized
    for garbage in ("", "not a hash \x00"):
        try:
            signal_type.validate_signal_str(garbage)
        except ValueError:
            continue
        raise AssertionError(f"{record.name} accepted the invalid signal {garbage!r}")


def check_action_handler_record(record: ActionHandlerRecord, config: Any) -> None:
    """Assert a handler builds from ``config`` and declares secrets that exist."""
    assert isinstance(config, record.config_class)
    fields = {field.name for field in attrs.fields(record.config_class)}
    missing = [name for name in record.secret_fields if name not in fields]
    assert not missing, f"secret_fields name unknown config fields: {missing}"
    handler = record.factory(config)
    assert callable(getattr(handler, "perform", None))


# --- services ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis for the session: the configured one, or an embedded one started here."""
    configured = os.environ.get(TEST_REDIS_ENV)
    if configured:
        yield configured
        return
    from hma_framework.embedded_redis import EmbeddedRedis

    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """The session's Redis, emptied before each test."""
    connection = Redis.from_url(redis_server_url)
    connection.flushdb()
    yield redis_server_url
    connection.flushdb()
    connection.close()


def _database_params() -> list[Any]:
    params: list[Any] = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get(TEST_DATABASE_ENV):
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


@pytest.fixture(params=_database_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test runs once on SQLite and, when configured, once on PostgreSQL (own schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hma.sqlite3'}"
        return
    base_url = os.environ[TEST_DATABASE_ENV]
    schema = f"hma_test_{secrets.token_hex(6)}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --- the system under test --------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "hma-data"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path, database_url: str, redis_url: str) -> Settings:
    return Settings(data_dir=str(data_dir), database_url=database_url, redis_url=redis_url)


@pytest.fixture
def registry() -> Registry:
    """Every installed plugin, strictly: a plugin that fails to import fails the test."""
    return make_registry(strict=True)


@pytest.fixture
def runtime(settings: Settings, registry: Registry) -> Iterator[Runtime]:
    runtime = build_runtime(settings, registry=registry)
    migrate.upgrade(runtime.store)
    yield runtime
    runtime.close()


@pytest.fixture
def app(runtime: Runtime) -> Any:
    from hma_framework.web.app import create_app

    app = create_app(runtime)
    app.testing = True
    return app


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@attrs.frozen
class Tokens:
    """One API key per scope, for tests of access control."""

    admin: str
    read: str
    submit: str

    @staticmethod
    def header(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(runtime: Runtime) -> Tokens:
    keys = runtime.api_keys
    return Tokens(
        admin=keys.create("test admin", ["admin"]).token,
        read=keys.create("test reader", ["read"]).token,
        submit=keys.create("test submitter", ["submit"]).token,
    )
