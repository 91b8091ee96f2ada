"""`hma serve` in an empty folder: a whole instance with no Redis or database configured."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from hma_framework.serve import _fresh_metrics_dir
from hma_framework.settings import load_settings
from hma_framework.testing import free_port, heavy_modules_imported_by, serve_env, start_serve

pytestmark = pytest.mark.slow


def _wait_for_health(port: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return time.monotonic() - started
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise AssertionError(f"no answer on /health within {timeout}s")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    output, _ = process.communicate(timeout=60)
    return output


def test_serve_from_an_empty_folder(tmp_path: Path) -> None:
    port = free_port()
    process = start_serve(tmp_path, port)
    try:
        elapsed = _wait_for_health(port, timeout=10)
        assert elapsed < 10
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 4  # redis, gunicorn (+ its workers), a worker, the scheduler
        deadline = time.monotonic() + 20
        ready = requests.get(f"http://127.0.0.1:{port}/status/ready", timeout=5)
        while ready.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            ready = requests.get(f"http://127.0.0.1:{port}/status/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        # HMA 2.0's plain-text check, from the gunicorn processes `hma serve` runs.
        status = requests.get(f"http://127.0.0.1:{port}/status", timeout=10)
        while status.text != "I-AM-ALIVE" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = requests.get(f"http://127.0.0.1:{port}/status", timeout=10)
        assert (status.status_code, status.text) == (200, "I-AM-ALIVE")
    finally:
        output = _stop(process)
    assert process.returncode == 0, output
    tokens = re.findall(r"hma_[0-9a-f]{12}_\S+", output)
    assert len(tokens) == 1, output
    assert (tmp_path / "hma-data" / "hma.sqlite3").exists()
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child

    # The key works, and a second start neither prints nor creates another.
    process = start_serve(tmp_path, port)
    try:
        _wait_for_health(port, timeout=10)
        plugins = requests.get(
            f"http://127.0.0.1:{port}/plugins",
            headers={"Authorization": f"Bearer {tokens[0]}"},
            timeout=5,
        )
        assert plugins.status_code == 200
        assert {"hma_pdq", "hma_video_md5"} <= {p["name"] for p in plugins.json()["plugins"]}
    finally:
        second_output = _stop(process)
    assert not re.findall(r"hma_[0-9a-f]{12}_\S+", second_output)


def test_fleet_roles_need_a_shared_redis(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hma_framework", "serve", "--role", "api"],
        cwd=tmp_path,
        env=serve_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "set HMA_REDIS_URL" in result.stderr


def _redis_servers_of(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "redis-server" in cmdline and str(folder) in cmdline:
            found.append(process)
    return found


def _processes_of(folder: Path) -> list[int]:
    """Processes whose environment names ``folder`` as their data folder."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("HMA_DATA_DIR") == str(folder):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


def _wait_ready(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/status/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready within {timeout}s")


def test_kill_9_redis_loss_and_restart_keep_one_private_redis(tmp_path: Path) -> None:
    """umask 022, the embedded Redis SIGKILLed, then `hma serve` itself: one Redis, 0600."""
    from tests.test_data_folder import assert_owner_only

    port = free_port()
    env = serve_env()
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str) -> subprocess.Popen[str]:
        with (logs / name).open("w") as log:  # a file: children of a killed serve keep it
            return subprocess.Popen(
                [sys.executable, "-m", "hma_framework", "serve", "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                preexec_fn=lambda: os.umask(0o022),
            )

    process = start("first.log")
    data = tmp_path / "hma-data"
    try:
        _wait_ready(port, timeout=30)
        [first_redis] = _redis_servers_of(data)
        first_redis.kill()  # Redis lost: hma serve restarts it
        deadline = time.monotonic() + 20
        while [p.pid for p in _redis_servers_of(data)] in ([], [first_redis.pid]):
            assert time.monotonic() < deadline, "the embedded Redis was not restarted"
            time.sleep(0.2)
        _wait_ready(port, timeout=20)
        process.send_signal(signal.SIGKILL)  # and now hma serve itself, as kill -9 does
        process.wait(10)
        second = start("second.log")
        try:
            _wait_ready(port, timeout=30)
            assert len(_redis_servers_of(data)) == 1, "never two redis-servers on one file"
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(60)
        assert second.returncode == 0, (logs / "second.log").read_text()
    except BaseException:
        print((logs / "first.log").read_text())
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert not _redis_servers_of(data)
    deadline = time.monotonic() + 20  # the killed serve's children stop too
    while _processes_of(data) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_of(data), "a killed serve left processes behind"
    assert (data / "secret_key").stat().st_size > 0  # made at start, before any API process
    assert_owner_only(data)


def test_an_api_node_refuses_a_database_whose_schema_is_not_current(
    tmp_path: Path, redis_url: str
) -> None:
    env = serve_env()
    env.update(
        HMA_DATABASE_URL=f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}",
        HMA_REDIS_URL=redis_url,
        HMA_DATA_DIR=str(tmp_path / "data"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "hma_framework", "serve", "--role", "api", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "the database schema is not current: run `hma db upgrade` first" in done.stderr
    assert "preparing the instance failed" in done.stderr


def test_the_supervisor_loads_neither_plugins_nor_records() -> None:
    """Migrations and the first key run in a child: the supervisor stays a small process."""
    assert heavy_modules_imported_by("hma_framework.cli", "hma_framework.serve") == []


def test_a_second_serve_keeps_the_live_metrics_files_of_the_first(tmp_path: Path) -> None:
    """Two ``hma serve`` roles share a data folder: starting one must not clear the other's
    series (nor fail because the folder exists), while files of exited processes go."""
    settings = load_settings({"HMA_DATA_DIR": str(tmp_path)})
    folder = tmp_path / "metrics"
    folder.mkdir()
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    live = folder / f"counter_{os.getpid()}.db"
    gone = folder / f"counter_{exited.pid}.db"
    nameless = folder / "counter_unknown.db"
    for path in (live, gone, nameless):
        path.write_bytes(b"x")

    assert _fresh_metrics_dir(settings) == folder.resolve()
    assert live.exists()
    assert not gone.exists()
    assert not nameless.exists()
