"""``hma serve``: a supervisor that runs a whole instance (or one fleet role) as child processes.

``--role all`` (the default) is the embedded single machine: an embedded Redis when
``HMA_REDIS_URL`` is unset, SQLite unless ``HMA_DATABASE_URL`` is set, migrations, a first admin
key, the API under gunicorn, workers and the scheduler. ``--role api`` and ``--role worker``
run one part of a fleet against shared Redis and PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import attrs
import click

from hma_framework.data_folder import restrict_umask, secure_tree
from hma_framework.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from hma_framework.metrics import MULTIPROC_ENV
from hma_framework.process_tools import process_alive, set_parent_death_signal
from hma_framework.secret_key import data_folder_key
from hma_framework.serve_prepare import Prepared
from hma_framework.settings import Settings

log = logging.getLogger(__name__)

ROLES = ("all", "api", "worker")
STOP_TIMEOUT_SECONDS = 30
RESTART_DELAY_SECONDS = 2.0
MAX_RESTART_DELAY_SECONDS = 30.0
#: A process that ran this long before it exited is restarted at once, with no backoff.
STABLE_AFTER_SECONDS = 60.0


def restart_delay(restarts: int) -> float:
    """Backoff before the ``restarts``-th restart in a row: none for the first, then growing."""
    return min(RESTART_DELAY_SECONDS * (restarts - 1), MAX_RESTART_DELAY_SECONDS)


class ServeError(click.ClickException):
    pass


def _die_with_parent() -> None:
    """Runs in each child before exec: if the supervisor is killed, the child gets SIGTERM."""
    os.setsid()  # keep a terminal's Ctrl-C for the supervisor, which stops children in order
    set_parent_death_signal(signal.SIGTERM)


@attrs.define
class Child:
    name: str
    argv: list[str]
    essential: bool
    #: The supervisor's environment when None.
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    restart_at: float | None = None


@attrs.define
class RedisWatch:
    """Restarts the embedded Redis with backoff when it dies; workers and the API reconnect."""

    server: EmbeddedRedis
    restarts: int = 0
    started_at: float = attrs.field(factory=time.monotonic)
    restart_at: float | None = None

    def check(self) -> None:
        if self.server.running():
            return
        now = time.monotonic()
        if self.restart_at is None:
            if now - self.started_at > STABLE_AFTER_SECONDS:
                self.restarts = 0
            self.restarts += 1
            self.restart_at = now + restart_delay(self.restarts)
            log.error(
                "embedded Redis exited; restarting it in %.0fs (restart %d)",
                self.restart_at - now,
                self.restarts,
            )
        if now < self.restart_at:
            return
        self.restart_at = None
        self.started_at = now
        try:
            self.server.start()
            log.warning("embedded Redis restarted; queued work is read back from its file")
        except EmbeddedRedisError as exc:
            log.error("embedded Redis did not restart: %s", exc)


@attrs.define
class Supervisor:
    env: dict[str, str]
    children: list[Child] = attrs.field(factory=list)
    stopping: bool = False
    redis: RedisWatch | None = None

    def add(
        self, name: str, argv: list[str], *, essential: bool, env: dict[str, str] | None = None
    ) -> None:
        self.children.append(Child(name=name, argv=argv, essential=essential, env=env))

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.argv,
            env=child.env if child.env is not None else self.env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s (pid %s)", child.name, child.process.pid)

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("received %s; stopping", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        """Start every child and watch them until a signal or an essential child's exit."""
        previous = {
            signum: signal.signal(signum, self._request_stop)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        exit_code = 0
        try:
            for child in self.children:
                self._start(child)
            while not self.stopping:
                time.sleep(0.2)
                exit_code = self._check_children()
                if exit_code:
                    break
        finally:
            self.stop_all()
            for stop_signal, handler in previous.items():
                signal.signal(stop_signal, handler)
        return exit_code

    def _check_children(self) -> int:
        """Restart what exited, each on its own backoff, without holding up the others."""
        if self.redis is not None and not self.stopping:
            self.redis.check()
        now = time.monotonic()
        for child in self.children:
            assert child.process is not None
            code = child.process.poll()
            if code is None or self.stopping:
                continue
            if child.essential:
                log.error("%s exited with %s; stopping everything", child.name, code)
                return code or 1
            if child.restart_at is None:
                if now - child.started_at > STABLE_AFTER_SECONDS:
                    child.restarts = 0
                child.restarts += 1
                child.restart_at = now + restart_delay(child.restarts)
                log.warning(
                    "%s exited with %s; restarting it in %.0fs (restart %d)",
                    child.name,
                    code,
                    child.restart_at - now,
                    child.restarts,
                )
            if now >= child.restart_at:
                self._start(child)
        return 0

    def stop_all(self) -> None:
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.wait()
        log.info("all processes stopped")


def _fresh_metrics_dir(settings: Settings) -> Path:
    """Where every child writes its metrics, cleared of files left by processes now gone.

    A restart so starts the counters at 0, while a second ``hma serve`` on the same data
    folder (``--role api`` beside ``--role worker``) keeps the live files of the first, which
    emptying the whole folder would delete from under it (and could race its ``mkdir``).
    """
    folder = settings.data_path / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.db"):
        pid = _writer_pid(path)
        if pid is None or not process_alive(pid):
            path.unlink(missing_ok=True)
    return folder.resolve()


def _writer_pid(path: Path) -> int | None:
    """The process id prometheus_client puts last in a series file name (``counter_812.db``)."""
    _, _, tail = path.stem.rpartition("_")
    return int(tail) if tail.isdigit() else None


def _hma(*args: str) -> list[str]:
    return [sys.executable, "-m", "hma_framework", *args]


def _gunicorn_argv(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{settings.web.host}:{settings.web.port}",
        "--workers",
        str(settings.web.processes),
        "--threads",
        str(settings.web.threads),
        "--worker-class",
        # gthread (keeps connections alive, unlike "sync") reading headers in its event loop
        "hma_framework.web.gunicorn_worker.HeaderDeadlineWorker",
        "--graceful-timeout",
        "20",
        "--no-control-socket",  # one per host by default; several instances would collide
        *(["--access-logfile", "-"] if settings.log_level in ("DEBUG", "INFO") else []),
        "--logger-class",  # upload-URL tokens are credentials: redacted in every log line
        "hma_framework.web.log_redaction.RedactingGunicornLogger",
        "hma_framework.web.wsgi:create_wsgi_app()",
    ]


def serve(settings: Settings, role: str, *, echo: Callable[[str], None] = click.echo) -> int:
    if role not in ROLES:
        raise ServeError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    restrict_umask()
    changed = secure_tree(settings.data_path)  # owner-only, also what older versions left
    if changed:
        log.warning("made %d file(s) in %s owner-only", changed, settings.data_path)
    if not settings.web.secret_key:
        data_folder_key(settings.data_path)  # made once here, before any API process races
    env = dict(os.environ)
    embedded: EmbeddedRedis | None = None
    if not settings.redis_url:
        if role != "all":
            raise ServeError(
                f"--role {role} is a fleet node: set HMA_REDIS_URL to the shared Redis"
            )
        embedded = EmbeddedRedis(settings.data_path)
        try:
            settings = attrs.evolve(settings, redis_url=embedded.start())
        except EmbeddedRedisError as exc:
            raise ServeError(str(exc)) from exc
        echo(f"embedded Redis at {settings.redis_url}")
    env["HMA_REDIS_URL"] = settings.redis_url
    env["HMA_DATA_DIR"] = str(settings.data_path.resolve())
    env[MULTIPROC_ENV] = str(_fresh_metrics_dir(settings))
    try:
        return _run_role(settings, role, env, echo, embedded)
    finally:
        if embedded is not None:
            embedded.stop()


def _prepare(role: str, env: dict[str, str]) -> Prepared:
    """Migrate, make the first key, find listeners: in a child, so the imports leave with it."""
    done = subprocess.run(
        _hma("serve-prepare", "--role", role),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,  # its answer; its log lines and errors go to our stderr
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ServeError(f"preparing the instance failed (exit code {done.returncode}; see above)")
    return Prepared.from_json(done.stdout.strip().splitlines()[-1])


def _run_role(
    settings: Settings,
    role: str,
    env: dict[str, str],
    echo: Callable[[str], None],
    embedded: EmbeddedRedis | None = None,
) -> int:
    prepared = _prepare(role, env)
    if prepared.admin_token:
        echo("Created the first admin API key. It is shown only this once; keep it safe:")
        echo(f"  {prepared.admin_token}")
    supervisor = Supervisor(env=env, redis=RedisWatch(embedded) if embedded else None)
    if role in ("all", "api"):
        supervisor.add("api", _gunicorn_argv(settings), essential=True)
        echo(f"API on http://{settings.web.host}:{settings.web.port}")
    if role in ("all", "worker"):
        # With a scheduler beside them, workers leave moving due retries to it: RQ would
        # otherwise fork a ~50 MiB process for that in one of them.
        worker_env = {**env, "HMA_WORKERS_MOVE_DUE_RETRIES": "false"} if role == "all" else env
        if settings.workers.processes:
            # One pool process forks them all, so they share its imports (see worker_pool).
            supervisor.add(
                "workers",
                _hma("worker", "--processes", str(settings.workers.processes)),
                essential=False,
                env=worker_env,
            )
    if role == "all":
        supervisor.add("scheduler", _hma("scheduler"), essential=False)
    for name in prepared.listeners:
        supervisor.add(f"{name}-listener", _hma(name, "listen"), essential=False)
        echo(f"listener of the {name} content source")
    return supervisor.run()
