"""API keys: high-entropy bearer tokens, stored as SHA-256 digests, carrying scopes.

A key looks like ``hma_<key id>_<secret>``. The key id is public (listings, revocation); the
whole token is only shown once, when it is created. Because tokens carry 256 bits of
randomness, a single fast hash is as safe as a slow KDF and costs microseconds per request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Iterable

import attrs
from sqlalchemy import func, select, update

from hma_framework.store.db import Store
from hma_framework.store.tables import ApiKeyRow, utcnow

SCOPES = ("submit", "read", "admin")
TOKEN_PREFIX = "hma_"


class UnknownScopeError(ValueError):
    pass


@attrs.frozen
class ApiKey:
    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None

    def allows(self, scope: str) -> bool:
        """``admin`` holds every scope; other scopes only themselves."""
        return scope in self.scopes or "admin" in self.scopes


@attrs.frozen
class CreatedKey:
    key: ApiKey
    token: str


def digest_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _to_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def validate_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(scopes))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise UnknownScopeError(f"unknown scope(s) {unknown}; known: {', '.join(SCOPES)}")
    if not chosen:
        raise UnknownScopeError(f"a key needs at least one scope of {', '.join(SCOPES)}")
    return chosen


class ApiKeys:
    """The API key repository."""

    def __init__(self, store: Store, on_change: Callable[[], None] | None = None) -> None:
        self._store = store
        self._on_change = on_change

    def create(self, name: str, scopes: Iterable[str]) -> CreatedKey:
        chosen = validate_scopes(scopes)
        key_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        row = ApiKeyRow(
            key_id=key_id, key_digest=digest_token(token), name=name, scopes=list(chosen)
        )
        with self._store.transaction() as session:
            session.add(row)
            session.flush()
            key = _to_key(row)
        return CreatedKey(key=key, token=token)

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key for ``token``, or None if it is unknown or revoked."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self._store.reading() as session:
            row = session.scalars(
                select(ApiKeyRow).where(ApiKeyRow.key_digest == digest_token(token))
            ).one_or_none()
            if row is None or row.revoked_at is not None:
                return None
            return _to_key(row)

    def live(self, key_id: str) -> ApiKey | None:
        """The key with this public id if it is not revoked (console sessions hold only ids)."""
        with self._store.reading() as session:
            row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)).one_or_none()
            if row is None or row.revoked_at is not None:
                return None
            return _to_key(row)

    def list(self, include_revoked: bool = False) -> list[ApiKey]:
        with self._store.reading() as session:
            query = select(ApiKeyRow).order_by(ApiKeyRow.id)
            if not include_revoked:
                query = query.where(ApiKeyRow.revoked_at.is_(None))
            return [_to_key(row) for row in session.scalars(query)]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by its id; False if there is no such live key."""
        with self._store.transaction() as session:
            result = session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        if self._on_change is not None:
            self._on_change()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def count_live(self) -> int:
        with self._store.reading() as session:
            count = session.scalar(
                select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
            )
            return int(count or 0)
