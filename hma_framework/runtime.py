"""The runtime: everything a process needs, built once and passed explicitly."""

from __future__ import annotations

import functools
import logging
import os
import uuid
from typing import TYPE_CHECKING

import attrs
from redis import Redis

from hma_framework.pipeline.queues import Queues
from hma_framework.registry import Registry, make_registry
from hma_framework.settings import Settings
from hma_framework.store.api_keys import ApiKeys
from hma_framework.store.db import Store

if TYPE_CHECKING:
    from hma_framework.index.manager import IndexManager

log = logging.getLogger(__name__)


class RuntimeConfigError(RuntimeError):
    """The runtime cannot be built from these settings; the message says what to set."""


@attrs.define(slots=False)  # slots off: functools.cached_property needs an instance dict
class Runtime:
    """Settings, plugins, records and queues of one process."""

    settings: Settings
    registry: Registry
    store: Store
    redis: Redis
    queues: Queues
    instance_id: str = attrs.field(factory=lambda: uuid.uuid4().hex)
    pid: int = attrs.field(factory=os.getpid)

    @property
    def api_keys(self) -> ApiKeys:
        return ApiKeys(self.store)

    @functools.cached_property
    def indexes(self) -> IndexManager:
        """This process's indexes, built on first use (snapshot + change log, or records)."""
        from hma_framework.index.manager import IndexManager

        return IndexManager(self.settings, self.registry, self.store)

    def after_fork(self) -> None:
        """Call in a forked child: pooled connections must not be shared with the parent."""
        self.store.after_fork()
        self.redis.connection_pool.reset()
        self.pid = os.getpid()

    def close(self) -> None:
        self.store.close()
        self.redis.close()


def connect_redis(url: str) -> Redis:
    # RQ stores binary job payloads: responses must not be decoded.
    return Redis.from_url(url, health_check_interval=30)


def build_runtime(settings: Settings, *, registry: Registry | None = None) -> Runtime:
    """Build the runtime once per process (an API process, a worker, a CLI command)."""
    if not settings.redis_url:
        raise RuntimeConfigError(
            "HMA_REDIS_URL is not set: point it at a Redis server, or use `hma serve`, which "
            "starts an embedded one"
        )
    registry = registry if registry is not None else make_registry(settings)
    store = Store(settings.effective_database_url)
    redis = connect_redis(settings.redis_url)
    queues = Queues(redis, default_timeout=settings.workers.job_timeout_seconds)
    return Runtime(settings=settings, registry=registry, store=store, redis=redis, queues=queues)
