"""Pytest fixtures and plugin contract checks, for this project and for plugin authors.

Use it from a ``conftest.py``::

    pytest_plugins = ["hma_framework.testing"]

Services come from ``HMA_TEST_REDIS_URL`` and ``HMA_TEST_DATABASE_URL`` when set (a real Redis
and PostgreSQL); otherwise an embedded Redis is started and SQLite is used, so the suite also
passes on a machine with neither. Every test gets an empty Redis database and, on PostgreSQL,
a schema of its own.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hma_framework.pipeline.worker import run_worker
from hma_framework.registry import Registry, make_registry
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import QUEUE_NAMES, Settings
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
        yield _redis_url_for_this_worker(configured)
        return
    from hma_framework.embedded_redis import EmbeddedRedis

    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server.url


def _redis_url_for_this_worker(url: str) -> str:
    """One Redis database per pytest-xdist worker, since every test flushes its database.

    Worker ``gwN`` counts down from the configured database number (``/15`` gives gw0 15, gw1
    14, ...), so parallel workers never empty each other's queues.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parsed = _split_redis_url(url)
    number = parsed.database - int(worker.removeprefix("gw"))
    if number < 0:
        raise RuntimeError(f"{TEST_REDIS_ENV}={url}: too few Redis databases for {worker}")
    return parsed.with_database(number)


@attrs.frozen
class _RedisUrl:
    prefix: str
    database: int
    query: str

    def with_database(self, number: int) -> str:
        return f"{self.prefix}/{number}{self.query}"


def _split_redis_url(url: str) -> _RedisUrl:
    """Split ``redis://host:port/N?query`` into its parts (database 0 when absent)."""
    base, sep, query = url.partition("?")
    head, slash, tail = base.rpartition("/")
    if slash and tail.isdigit() and "//" in head:
        return _RedisUrl(head, int(tail), sep + query)
    return _RedisUrl(base.rstrip("/"), 0, sep + query)


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
    with postgres_schema(os.environ[TEST_DATABASE_ENV]) as url:
        yield url


@contextlib.contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A URL for a fresh schema of the PostgreSQL database at ``base_url``, dropped after."""
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
    """Test settings: URL fetches may reach loopback test servers, retries are quick."""
    settings = Settings(data_dir=str(data_dir), database_url=database_url, redis_url=redis_url)
    return attrs.evolve(
        settings,
        fetch=attrs.evolve(settings.fetch, allowed_networks=("127.0.0.1/32",), timeout_seconds=5),
        pipeline=attrs.evolve(settings.pipeline, retry_intervals_seconds=(1,)),
    )


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
def worker_runtime(settings: Settings, registry: Registry) -> Iterator[Runtime]:
    """A second runtime, as a worker process would build for itself."""
    runtime = build_runtime(settings, registry=registry)
    yield runtime
    runtime.close()


def run_jobs(runtime: Runtime, roles: Sequence[str] = QUEUE_NAMES) -> None:
    """Run a real RQ worker until the queues are empty."""
    run_worker(runtime, list(roles), burst=True)


@pytest.fixture
def app(runtime: Runtime) -> Any:
    from hma_framework.testing_openapi import SpecCheckingClient
    from hma_framework.web.app import create_app

    app = create_app(runtime)
    app.testing = True
    app.test_client_class = SpecCheckingClient  # every answer is checked against the spec
    return app


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The app on a real loopback HTTP server; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def free_port() -> int:
    """A loopback port nothing listens on now, for a server a test starts as a process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_photo(width: int = 640, height: int = 480, seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A photo-like test image (gradients and shapes, so PDQ has structure to work with)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(10, max(11, min(width, height) // 3))
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


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


#: Modules that make a process large (plugins, records, indexes, web); see below.
HEAVY_MODULES = (
    "numpy",
    "faiss",
    "PIL",
    "sqlalchemy",
    "flask",
    "threatexchange",
    "hma_framework.runtime",
    "hma_framework.registry",
)


def heavy_modules_imported_by(*modules: str) -> list[str]:
    """Which of ``HEAVY_MODULES`` a fresh interpreter has loaded after importing ``modules``.

    For processes that should stay small (the ``hma serve`` supervisor, the scheduler).
    """
    import subprocess
    import sys

    probe = (
        f"import sys\nimport {', '.join(modules)}\n"
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    return loaded.split(",") if loaded else []


def serve_env() -> dict[str, str]:
    """This environment without ``HMA_`` settings, as a new user has it, and one worker process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env["HMA_WORKERS_PROCESSES"] = "1"
    return env


def start_serve(folder: Path, port: int) -> subprocess.Popen[str]:
    """``hma serve --port PORT`` started in ``folder`` with :func:`serve_env`; output piped."""
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "serve", "--port", str(port)],
        cwd=folder,
        env=serve_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@attrs.define
class ServedInstance:
    """A whole ``hma serve`` instance started by a test: its URL and the admin key it printed."""

    url: str
    admin_token: str
    output: list[str]


@contextlib.contextmanager
def served_instance(folder: Path, timeout: float = 60) -> Iterator[ServedInstance]:
    """``hma serve`` in ``folder`` as a user starts it (no ``HMA_`` settings, one worker process).

    Yields once ``/status/ready`` answers 200 and the first-start admin key has been printed;
    stops it with SIGINT (what Ctrl-C sends) on the way out.
    """
    import re
    import signal
    import time

    import requests

    port = free_port()
    process = start_serve(folder, port)
    assert process.stdout is not None
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        token = None
        while time.monotonic() < deadline:
            found = re.findall(r"hma_[0-9a-f]{12}_\S+", "".join(output))
            token = found[0] if found else None
            try:
                ready = requests.get(f"{url}/status/ready", timeout=2).status_code == 200
            except requests.RequestException:
                ready = False
            if ready and token:
                break
            if process.poll() is not None:
                raise AssertionError(f"hma serve exited: {''.join(output)}")
            time.sleep(0.2)
        else:
            raise AssertionError(f"hma serve not ready in {timeout}s: {''.join(output)}")
        yield ServedInstance(url, token, output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        reader.join(5)


API_WORKER_CLASS = "hma_framework.web.gunicorn_worker.HeaderDeadlineWorker"


@contextlib.contextmanager
def gunicorn_api(
    settings: Settings, *, processes: int = 1, threads: int = 2, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The real API under gunicorn with the API's worker class, on ``settings``' records.

    Yields its base URL and the master process once every worker process is up and
    ``/status`` answers; ``env`` adds ``HMA_`` settings.
    """
    import sys
    import time

    import psutil
    import requests

    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"),
            *("--workers", str(processes), "--threads", str(threads)),
            *("--worker-class", API_WORKER_CLASS, "--no-control-socket"),
            "hma_framework.web.wsgi:create_wsgi_app()",
        ],
        env={
            **os.environ,
            "HMA_DATABASE_URL": settings.database_url,
            "HMA_REDIS_URL": settings.redis_url,
            "HMA_DATA_DIR": settings.data_dir,
            "HMA_LOG_LEVEL": "WARNING",
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "gunicorn exited"
            try:
                up = len(psutil.Process(process.pid).children()) >= processes
                if up and requests.get(base + "/status", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        process.wait(30)
