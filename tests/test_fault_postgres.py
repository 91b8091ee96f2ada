"""Fault injection: PostgreSQL restarted under load.

A private PostgreSQL cluster of the test's own (initdb in a temporary folder, on a free port;
never the shared one) holds the records of an API and two workers while submissions arrive.
It is stopped as a crash would (``pg_ctl stop -m immediate``) and started again. Meanwhile
the API answers 503 with ``Retry-After``, never a 500, and the client sends those requests
again; afterwards every submission must be terminal and every delivery received once under
its ``webhook-id``. Prints the figures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from hma_framework.registry import Registry
from hma_framework.settings import Settings
from hma_framework.testing import free_port
from tests.fault_support import (
    assert_nothing_lost,
    impatient,
    receiver,
    rig,
)
from tests.test_actions_support import Receiver

__all__ = ["receiver"]  # the fixture, used by name

pytestmark = pytest.mark.slow

STUCK_AFTER = 2
ROUND = 6
OUTAGE_SECONDS = 4


class PrivatePostgres:
    """A throwaway PostgreSQL cluster; run as the ``postgres`` user when we are root."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="hma-fault-pg-"))
        self.port = free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            self.as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=3"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_owner, str(self.binaries / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")

    def create(self) -> None:
        self._run("initdb", "-D", str(self.folder / "data"), "--auth=trust", "-U", "postgres")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=60"
        )
        data, log = str(self.folder / "data"), str(self.folder / "server.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _binaries() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else None


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    binaries = _binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.skip("running as root and no runuser to run initdb as the postgres user")
    server = PrivatePostgres(binaries)
    try:
        server.create()
        server.start()
    except (RuntimeError, LookupError, OSError, subprocess.TimeoutExpired) as exc:
        server.remove()
        pytest.skip(f"a private PostgreSQL cluster cannot be created here: {exc}")
    yield server
    server.remove()


@pytest.mark.parametrize(
    "database_url", [pytest.param("sqlite", id="private-postgresql")], indirect=True
)  # the records go to the private cluster; the fixture only needs a value
def test_postgresql_restarted_under_load_loses_nothing(
    settings: Settings,
    registry: Registry,
    private_postgres: PrivatePostgres,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    own = impatient(attrs.evolve(settings, database_url=private_postgres.url), STUCK_AFTER)
    with rig(own, registry, receiver, tmp_path, "fp-") as test:
        load = test.load
        load.submit(ROUND)

        private_postgres.stop("immediate")  # as a crash: no goodbye to any client
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < outage_ends:
            load.submit(2)
            time.sleep(0.2)
        refused_while_down = len(load.refused)
        ready = test.admin.get("/status/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["database"] is False
        private_postgres.start()

        load.submit(ROUND)
        load.retry_refused()
        test.settle()
    result = test.finish(
        receiver,
        {"PostgreSQL stopped (immediate) and started": 1},
        f"{refused_while_down} refused while down; ",
    )
    assert refused_while_down > 0, "submissions while the database was down answer 503"
    assert set(load.statuses) <= {200, 503}, load.statuses  # never a 500
    assert_nothing_lost(result, load.sent, load.expected_deliveries)
