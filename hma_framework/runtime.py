"""The runtime: everything a process needs, built once and passed explicitly."""

from __future__ import annotations

import functools
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING

import attrs
from redis import Redis

from hma_framework.pipeline.queues import Queues
from hma_framework.redis_connection import RedisNotConfigured, redis_for
from hma_framework.registry import Registry, make_registry
from hma_framework.settings import Settings, load_section
from hma_framework.store.api_keys import ApiKey, ApiKeys, digest_token
from hma_framework.store.db import Store

if TYPE_CHECKING:
    from hma_framework.index.manager import IndexManager
    from hma_framework.media import MediaStore
    from hma_framework.store.content import ContentRecords
    from hma_framework.store.hash_groups import HashSubmissionGroups
    from hma_framework.types import ContentSource, MediaHasher

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
    #: Queues this process's worker serves; a worker that serves ``match`` matches inline.
    roles: tuple[str, ...] = ()

    @property
    def api_keys(self) -> ApiKeys:
        """The key repository; changes made through it clear this process's key cache."""
        return ApiKeys(self.store, on_change=self._key_cache.clear)

    @functools.cached_property
    def _key_cache(self) -> dict[str, tuple[float, ApiKey | None]]:
        return {}

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key for ``token``, trusting a recent answer for ``key_cache_seconds``.

        Keys are high-entropy, so the cache is keyed by the token's digest only; it is
        bounded and cleared whenever it grows past a few thousand entries.
        """
        ttl = self.settings.web.key_cache_seconds
        now = time.monotonic()
        cache = self._key_cache
        digest = digest_token(token)
        cached = cache.get(digest)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
        key = ApiKeys(self.store).authenticate(token)
        if ttl:
            if len(cache) > 4096:
                cache.clear()
            cache[digest] = (now, key)
        return key

    @functools.cached_property
    def indexes(self) -> IndexManager:
        """This process's indexes, built on first use (snapshot + change log, or records)."""
        from hma_framework.index.manager import IndexManager

        return IndexManager(self.settings, self.registry, self.store)

    @functools.cached_property
    def hash_submissions(self) -> HashSubmissionGroups:
        """Where ``/submit/hash/`` records: concurrent requests of this process share a
        transaction."""
        from hma_framework.store.hash_groups import HashSubmissionGroups
        from hma_framework.store.hash_submissions import HashSubmissions

        return HashSubmissionGroups(HashSubmissions(self.store))

    @functools.cached_property
    def content(self) -> ContentRecords:
        from hma_framework.store.content import ContentRecords

        return ContentRecords(self.store)

    @functools.cached_property
    def media(self) -> MediaStore:
        """The media store a content source's settings configure, else the data folder's."""
        from hma_framework.media import LocalMediaStore

        for record in self.registry.content_sources.values():
            if record.media_store is not None:
                store = record.media_store(self.settings)
                if store is not None:
                    return store
        return LocalMediaStore(self.settings.data_path / "media")

    @functools.cached_property
    def hashers(self) -> dict[str, MediaHasher]:
        """One configured hasher per signal type, built once per process."""
        return {
            name: record.make_hasher(self.settings)
            for name, record in self.registry.signal_types.items()
        }

    def content_source(self, location: str) -> ContentSource | None:
        """The content source serving ``location``'s scheme, built once per process."""
        record = self.registry.content_source_for(location)
        if record is None:
            return None
        sources = self.__dict__.setdefault("_content_sources", {})
        if record.name not in sources:
            sources[record.name] = record.factory(self.settings)
        source: ContentSource = sources[record.name]
        return source

    def after_fork(self) -> None:
        """Call in a forked child: pooled connections must not be shared with the parent."""
        self.store.after_fork()
        self.redis.connection_pool.reset()
        self.pid = os.getpid()

    def close(self) -> None:
        self.store.close()
        self.redis.close()


def build_runtime(settings: Settings, *, registry: Registry | None = None) -> Runtime:
    """Build the runtime once per process (an API process, a worker, a CLI command)."""
    try:
        redis = redis_for(settings)
    except RedisNotConfigured as exc:
        raise RuntimeConfigError(str(exc)) from exc
    registry = registry if registry is not None else make_registry(settings)
    for section in registry.settings_sections():
        load_section(settings, section.name, section.cls, section.aliases)  # fails now if bad
    store = Store(settings.effective_database_url)
    queues = Queues(redis, default_timeout=settings.workers.job_timeout_seconds)
    return Runtime(settings=settings, registry=registry, store=store, redis=redis, queues=queues)
