"""The one way a process connects to Redis, kept apart from the runtime.

Small processes (the scheduler, the ``hma serve`` supervisor) need Redis but none of the
plugins, records or indexes a runtime loads; importing this module costs them nothing else.
"""

from __future__ import annotations

from redis import Redis

from hma_framework.settings import Settings


class RedisNotConfigured(RuntimeError):
    """No Redis URL in these settings; the message says what to set."""


def connect_redis(url: str) -> Redis:
    # RQ stores binary job payloads: responses must not be decoded.
    return Redis.from_url(url, health_check_interval=30)


def redis_for(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise RedisNotConfigured(
            "HMA_REDIS_URL is not set: point it at a Redis server, or use `hma serve`, which "
            "starts an embedded one"
        )
    return connect_redis(settings.redis_url)
