"""Console sessions kept in Redis: the browser holds only a random session id.

The API key pasted at sign-in is never stored: the session keeps the key's public id and is
checked against the key records on each request, so revoking the key ends the session too.
Redis keys are the SHA-256 of the session id, so a Redis dump yields no usable cookie. Each
request pushes the idle expiry forward; sign-out deletes the record.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import attrs
from redis import Redis

COOKIE_NAME = "hma_console"
_PREFIX = "hma:console:session:"


@attrs.frozen
class ConsoleSession:
    session_id: str
    key_id: str
    csrf_token: str

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf_token, given or "")


def _redis_key(session_id: str) -> str:
    return _PREFIX + hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class ConsoleSessions:
    """Create, read (sliding expiry) and end sessions."""

    def __init__(self, redis: Redis, idle_seconds: int) -> None:
        self._redis = redis
        self._idle = idle_seconds

    def create(self, key_id: str) -> ConsoleSession:
        session = ConsoleSession(
            session_id=secrets.token_urlsafe(32),
            key_id=key_id,
            csrf_token=secrets.token_urlsafe(32),
        )
        name = _redis_key(session.session_id)
        pipe = self._redis.pipeline()
        pipe.hset(name, mapping={"key_id": key_id, "csrf": session.csrf_token})
        pipe.expire(name, self._idle)
        pipe.execute()
        return session

    def get(self, session_id: str | None) -> ConsoleSession | None:
        """The live session, its idle expiry renewed; None when unknown or expired."""
        if not session_id or len(session_id) > 100:
            return None
        name = _redis_key(session_id)
        pipe = self._redis.pipeline()
        pipe.hgetall(name)
        # No XX flag: it needs Redis 7 (the embedded Redis is 6.2), and EXPIRE on a missing
        # key is a no-op anyway, so an ended session is not brought back.
        pipe.expire(name, self._idle)
        stored, _ = pipe.execute()
        if not stored:
            return None
        return ConsoleSession(
            session_id=session_id,
            key_id=stored[b"key_id"].decode(),
            csrf_token=stored[b"csrf"].decode(),
        )

    def end(self, session_id: str) -> None:
        self._redis.delete(_redis_key(session_id))
