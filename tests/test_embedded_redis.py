"""One redis-server per data folder: an orphan is stopped (its data kept), a live owner refused."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis

from hma_framework.embedded_redis import EmbeddedRedis, EmbeddedRedisError

# An "older hma serve": starts the embedded Redis without the parent-death signal, writes a
# key, and dies without stopping it, as `kill -9` leaves things.
ORPHAN_MAKER = """
import os, sys
from pathlib import Path
from redis import Redis
import hma_framework.embedded_redis as er
er._server_child_setup = os.setsid
server = er.EmbeddedRedis(Path(sys.argv[1]))
server.start()
Redis.from_url(server.url).set("queued-work", "kept")
Redis.from_url(server.url).execute_command("BGREWRITEAOF")
print(server.process.pid, flush=True)
os._exit(0)
"""


def _servers_on(socket_path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"redis-server" in cmdline and str(socket_path).encode() in cmdline:
            found.append(int(entry.name))
    return found


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return True
        if status == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_second_start_while_the_owner_lives_is_refused(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        with pytest.raises(EmbeddedRedisError, match="another hma serve"):
            EmbeddedRedis(tmp_path).start()
        assert Redis.from_url(first.url).ping()
        assert len(_servers_on(first.socket_path)) == 1


def test_an_orphaned_server_is_stopped_and_its_append_only_file_reused(tmp_path: Path) -> None:
    output = tmp_path / "orphan-maker.out"
    with output.open("w") as sink:  # not a pipe: the orphan would hold it open
        made = subprocess.run(
            [sys.executable, "-c", ORPHAN_MAKER, str(tmp_path)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=60,
            preexec_fn=lambda: os.umask(0o022),
        )
    assert made.returncode == 0, output.read_text()
    orphan = int(output.read_text().split()[0])
    try:
        assert not _gone(orphan, timeout=0.5), "the orphan should outlive its owner"
        server = EmbeddedRedis(tmp_path)
        with server:
            assert _gone(orphan), "the orphan was not stopped"
            assert _servers_on(server.socket_path) == [server.process.pid]  # type: ignore[union-attr]
            assert Redis.from_url(server.url).get("queued-work") == b"kept"
    finally:
        if not _gone(orphan, timeout=0):
            os.kill(orphan, 9)
    loose = [p for p in (tmp_path / "redis").rglob("*") if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert not loose, "the append-only files are owner-only"
