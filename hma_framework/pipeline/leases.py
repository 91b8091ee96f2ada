"""Leases in Redis: work that must run in one place across a whole fleet.

A lease is a key holding its owner's token with an expiry. Its owner renews it well before it
expires; an owner that dies stops renewing, and the key expires, so nobody holds work forever.
Renewing and releasing check the token in one Lua call, so an owner whose lease already passed
to someone else can never extend or delete the new owner's lease.
"""

from __future__ import annotations

import secrets

from redis import Redis

# KEYS[1]: the lease key; ARGV[1]: the owner's token; ARGV[2]: the new lifetime in ms.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class Lease:
    """One owner's claim on ``key`` for ``ttl_seconds`` at a time."""

    def __init__(self, redis: Redis, key: str, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError("a lease needs a positive lifetime")
        self._redis = redis
        self.key = key
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.token = secrets.token_hex(16)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def acquire_or_renew(self) -> bool:
        """True when this owner holds the lease now (taken if free, extended if ours)."""
        if self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        return bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        """Give the lease up at once (only if it is still ours), so a standby takes over."""
        self._release(keys=[self.key], args=[self.token])

    def holder(self) -> str | None:
        raw = self._redis.get(self.key)
        return raw.decode() if isinstance(raw, bytes) else raw
