"""The records store on SQLite and PostgreSQL: migrations, shared signals, API keys."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import OperationalError

from hma_framework.store import migrate
from hma_framework.store.api_keys import ApiKeys, digest_token
from hma_framework.store.db import POSTGRES_CONNECT_TIMEOUT_SECONDS, Store, make_engine
from hma_framework.store.tables import (
    ApiKeyRow,
    BankMemberRow,
    BankRow,
    Base,
    ContentRow,
    MemberSignalRow,
    SignalRow,
)

EXPECTED_TABLES = {
    "content",
    "content_submission",
    "content_signal",
    "bank",
    "signal",
    "bank_member",
    "member_signal",
    "bank_change",
    "match",
    "action_rule",
    "handler_config",
    "delivery",
    "delivery_attempt",
    "exchange",
    "exchange_checkpoint",
    "api_key",
    "retroaction_cursor",
    "retroaction_scan",
}


def test_migrations_create_the_schema_the_models_describe(database_url: str) -> None:
    store = Store(database_url)
    try:
        assert migrate.current_revision(store) is None
        migrate.upgrade(store)
        assert migrate.is_up_to_date(store)
        assert set(inspect(store.engine).get_table_names()) >= EXPECTED_TABLES
        with store.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == [], "models and migrations disagree: add a migration"
        migrate.downgrade(store, "base")
        assert not EXPECTED_TABLES & set(inspect(store.engine).get_table_names())
        migrate.upgrade(store)
        assert migrate.is_up_to_date(store)
    finally:
        store.close()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    store = Store(f"sqlite:///{tmp_path}/wal.sqlite3")
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


def test_one_hash_shared_by_two_banks_and_utc_times(database_url: str) -> None:
    store = Store(database_url)
    migrate.upgrade(store)
    try:
        with store.transaction() as session:
            banks = [BankRow(name="a", tags=["csam"]), BankRow(name="b", thresholds={"pdq": 40})]
            signal = SignalRow(signal_type="pdq", signal_value="f" * 64)
            session.add_all([*banks, signal])
            session.flush()
            members = [BankMemberRow(bank_pk=bank.id, tags=["x"]) for bank in banks]
            session.add_all(members)
            session.flush()
            session.add_all(MemberSignalRow(member_pk=m.id, signal_pk=signal.id) for m in members)
            content = ContentRow(
                content_id="c1", content_type="photo", submission_method="hash", status="submitted"
            )
            session.add(content)
        with store.reading() as session:
            assert session.scalars(select(SignalRow)).all().__len__() == 1
            shared = session.scalars(
                select(BankRow.name)
                .join(BankMemberRow, BankMemberRow.bank_pk == BankRow.id)
                .join(MemberSignalRow, MemberSignalRow.member_pk == BankMemberRow.id)
                .order_by(BankRow.name)
            ).all()
            assert shared == ["a", "b"]
            bank_b = session.scalars(select(BankRow).where(BankRow.name == "b")).one()
            assert bank_b.thresholds == {"pdq": 40}
            stored = session.scalars(select(ContentRow)).one()
            assert stored.submitted_at.tzinfo is not None
            assert abs(stored.submitted_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
        with store.transaction() as session:  # deleting a bank removes its members
            session.delete(session.scalars(select(BankRow).where(BankRow.name == "a")).one())
        with store.reading() as session:
            assert len(session.scalars(select(BankMemberRow)).all()) == 1
    finally:
        store.close()


def test_api_keys_are_stored_as_digests_and_revocable(database_url: str) -> None:
    store = Store(database_url)
    migrate.upgrade(store)
    try:
        keys = ApiKeys(store)
        created = keys.create("ci", ["read", "submit"])
        assert created.token.startswith(f"hma_{created.key.key_id}_")
        with store.reading() as session:
            row = session.scalars(select(ApiKeyRow)).one()
            assert row.key_digest == digest_token(created.token)
            assert created.token not in (row.key_digest, row.key_id, row.name)
        key = keys.authenticate(created.token)
        assert key is not None and key.scopes == ("read", "submit")
        assert key.allows("read") and not key.allows("admin")
        assert keys.authenticate(created.token + "x") is None
        assert keys.authenticate("Bearer nonsense") is None
        assert keys.revoke(created.key.key_id)
        assert not keys.revoke(created.key.key_id)
        assert keys.authenticate(created.token) is None
        assert keys.list() == [] and len(keys.list(include_revoked=True)) == 1
    finally:
        store.close()


def test_a_postgresql_server_that_never_answers_fails_the_connect_in_seconds() -> None:
    """A server that takes the TCP connection but never speaks: libpq would wait for minutes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/test")
        started = time.monotonic()
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert time.monotonic() - started < POSTGRES_CONNECT_TIMEOUT_SECONDS * 2 + 1
        engine.dispose()
