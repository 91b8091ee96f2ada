"""Moving an HMA 2.0 (OpenMediaMatch) PostgreSQL database into this project's records.

Reads HMA 2.0's tables as its models lay them out (``bank``, ``bank_content``,
``content_signal``, ``exchange``, ``exchange_data``) and writes through the bank repository,
so every imported hash goes through the change log and is matchable like any other.

- Banks keep their names and ``enabled_ratio`` (0 becomes a switched-off bank).
- Contents become members. Their integer ids are kept when none of them is taken here (a
  fresh install), so ``bank_content_id`` values a client stored still name the same item;
  otherwise new ids are given and the answer says so.
- ``disable_until_ts`` keeps its meaning (0: off; a timestamp: off until then).
- A content's ``note`` and ``metadata`` (``content_id``, ``content_uri``, ``json``) come along.
- Exchanges, their credentials (per API and per exchange), fetch checkpoints and signal type
  ratios: see :mod:`hma_framework.hma2_import_exchanges`. Each exchange is linked to its bank.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import attrs
from sqlalchemy import Engine, MetaData, Table, create_engine, func, select, update

from hma_framework.exchanges.configs import Exchanges
from hma_framework.hma2_import_exchanges import (
    ExchangeImport,
    import_api_credentials,
    import_exchanges,
    import_signal_type_ratios,
)
from hma_framework.registry import InvalidSignalError, Registry
from hma_framework.secret_box import SecretBox
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.db import Store
from hma_framework.store.tables import BankMemberRow, BankRow, ExchangeRow

#: HMA 2.0's tables that older (or newer) versions of it may lack; each is read if present.
OPTIONAL_TABLES = (
    "exchange",
    "exchange_data",
    "exchange_fetch_status",
    "exchange_api_config",
    "signal_type_override",
)

BATCH = 2000
HMA2_ENABLED, HMA2_DISABLED = 1, 0


class Hma2ImportError(RuntimeError):
    """The import cannot start; the message says why. Nothing was written."""


@attrs.define
class ImportSummary:
    banks: int = 0
    exchanges: int = 0
    contents: int = 0
    signals: int = 0
    skipped_contents: int = 0
    skipped_signals: int = 0
    kept_ids: bool = True
    skipped_reasons: dict[str, int] = attrs.field(factory=dict)
    exchange_import: ExchangeImport = attrs.field(factory=ExchangeImport)

    def skip(self, reason: str) -> None:
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1


class Hma2Database:
    """Read access to an HMA 2.0 database (only SELECTs)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        metadata = MetaData()
        try:
            metadata.reflect(self.engine, only=["bank", "bank_content", "content_signal"])
        except Exception as exc:
            raise Hma2ImportError(f"not an HMA 2.0 database (or unreachable): {exc}") from exc
        metadata.reflect(self.engine, only=[n for n in OPTIONAL_TABLES if self._has(n)])
        self.tables: dict[str, Table] = dict(metadata.tables)

    def _has(self, name: str) -> bool:
        from sqlalchemy import inspect

        return inspect(self.engine).has_table(name)

    def close(self) -> None:
        self.engine.dispose()

    def banks(self) -> list[dict[str, Any]]:
        bank = self.tables["bank"]
        with self.engine.connect() as connection:
            return [
                dict(row._mapping) for row in connection.execute(select(bank).order_by(bank.c.id))
            ]

    def rows(self, name: str) -> list[dict[str, Any]]:
        """Every row of an optional table (none if this HMA 2.0 lacks it), in key order."""
        table = self.tables.get(name)
        if table is None:
            return []
        with self.engine.connect() as connection:
            ordered = select(table).order_by(*table.primary_key.columns)
            return [dict(row._mapping) for row in connection.execute(ordered)]

    def exchanges(self) -> list[dict[str, Any]]:
        return self.rows("exchange")

    def content_count(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.scalar(select(func.count()).select_from(self.tables["bank_content"]))
                or 0
            )

    def content_id_range(self) -> tuple[int, int] | None:
        content = self.tables["bank_content"]
        with self.engine.connect() as connection:
            low, high = connection.execute(
                select(func.min(content.c.id), func.max(content.c.id))
            ).one()
        return None if low is None else (int(low), int(high))

    def contents(self, batch: int = BATCH) -> Iterator[list[dict[str, Any]]]:
        """Contents in id order with their signals and, for exchange items, the fetch id."""
        content, signal = self.tables["bank_content"], self.tables["content_signal"]
        data = self.tables.get("exchange_data")
        columns = [content.c.id, content.c.bank_id, content.c.disable_until_ts]
        for optional in ("original_content_uri", "note", "bank_content_metadata"):
            if optional in content.c:
                columns.append(content.c[optional])
        query = select(*columns)
        if data is not None and "imported_from_id" in content.c:
            query = query.add_columns(data.c.fetch_id).outerjoin(
                data, data.c.id == content.c.imported_from_id
            )
        last = None
        while True:
            page = query.order_by(content.c.id).limit(batch)
            if last is not None:
                page = page.where(content.c.id > last)
            with self.engine.connect() as connection:
                rows = [dict(row._mapping) for row in connection.execute(page)]
                if not rows:
                    return
                ids = [row["id"] for row in rows]
                signals: dict[int, list[tuple[str, str]]] = defaultdict(list)
                for content_id, signal_type, value in connection.execute(
                    select(signal.c.content_id, signal.c.signal_type, signal.c.signal_val).where(
                        signal.c.content_id.in_(ids)
                    )
                ):
                    signals[content_id].append((signal_type, value))
            for row in rows:
                row["signals"] = signals.get(row["id"], [])
            last = ids[-1]
            yield rows


def _refuse_existing(
    store: Store, banks: list[dict[str, Any]], exchanges: list[dict[str, Any]]
) -> None:
    names = [b["name"] for b in banks]
    with store.reading() as session:
        taken = list(session.scalars(select(BankRow.name).where(BankRow.name.in_(names))))
        taken_exchanges = list(
            session.scalars(
                select(ExchangeRow.name).where(ExchangeRow.name.in_([e["name"] for e in exchanges]))
            )
        )
    if taken or taken_exchanges:
        raise Hma2ImportError(
            "already here, nothing imported: "
            + ", ".join(
                [*(f"bank {n}" for n in taken), *(f"exchange {n}" for n in taken_exchanges)]
            )
        )


def _ids_are_free(store: Store, id_range: tuple[int, int] | None) -> bool:
    if id_range is None:
        return True
    with store.reading() as session:
        taken = session.scalar(
            select(func.count())
            .select_from(BankMemberRow)
            .where(BankMemberRow.id.between(*id_range))
        )
    return not taken


def _member(
    registry: Registry, row: dict[str, Any], keep_id: bool, summary: ImportSummary
) -> NewMember | None:
    signals = []
    for signal_type, value in row["signals"]:
        try:
            signals.append((signal_type, registry.normalize_signal(signal_type, value)))
        except InvalidSignalError:
            summary.skipped_signals += 1
            known = signal_type in registry.signal_types
            summary.skip(f"{signal_type}: {'invalid value' if known else 'unknown type'}")
    if not signals:
        summary.skipped_contents += 1
        return None
    metadata = row.get("bank_content_metadata") or {}
    extra = {
        "original_media_uri": row.get("original_content_uri"),
        "content_uri": metadata.get("content_uri"),
        "metadata_json": metadata.get("json"),
    }
    return NewMember(
        signals=tuple(signals),
        content_id=metadata.get("content_id"),
        external_id=row.get("fetch_id"),
        notes=row.get("note") or "",
        exchange_metadata={k: v for k, v in extra.items() if v},
        member_id=row["id"] if keep_id else None,
    )


def import_hma2(
    source: Hma2Database,
    store: Store,
    registry: Registry,
    box: SecretBox,
    settings: Settings,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportSummary:
    """Import everything; ``progress`` is called with the number of contents just handled."""
    summary = ImportSummary()
    hma_banks, hma_exchanges = source.banks(), source.exchanges()
    _refuse_existing(store, hma_banks, hma_exchanges)
    summary.kept_ids = _ids_are_free(store, source.content_id_range())
    repository = Banks(store)
    exchanges = Exchanges(store, registry, box, settings)

    found = summary.exchange_import
    statuses = {row["collab_id"]: row for row in source.rows("exchange_fetch_status")}
    exchange_pks = import_exchanges(exchanges, hma_exchanges, statuses, found)
    import_api_credentials(exchanges, source.rows("exchange_api_config"), found)
    import_signal_type_ratios(
        exchanges, source.rows("signal_type_override"), set(registry.signal_types), found
    )
    summary.exchanges = found.exchanges

    bank_names: dict[int, str] = {}
    for bank in hma_banks:
        ratio = float(bank.get("enabled_ratio", 1.0))
        repository.create_bank(bank["name"], matching_enabled_ratio=ratio)
        linked = exchange_pks.get(bank.get("import_from_exchange_id") or -1)
        if linked is not None:
            with store.transaction() as session:
                session.execute(
                    update(BankRow).where(BankRow.name == bank["name"]).values(exchange_pk=linked)
                )
        bank_names[bank["id"]] = bank["name"]
    summary.banks = len(bank_names)

    for rows in source.contents():
        by_bank: dict[str, list[tuple[dict[str, Any], NewMember]]] = defaultdict(list)
        for row in rows:
            member = _member(registry, row, summary.kept_ids, summary)
            if member is not None:
                by_bank[bank_names[row["bank_id"]]].append((row, member))
        for bank_name, pairs in by_bank.items():
            member_pks = repository.add_members(bank_name, [m for _, m in pairs])
            for member_pk, (row, member) in zip(member_pks, pairs, strict=True):
                _apply_disable(repository, member_pk, int(row["disable_until_ts"]))
                summary.contents += 1
                summary.signals += len(member.signals)
        progress(len(rows))
    return summary


def _apply_disable(repository: Banks, member_pk: int, disable_until_ts: int) -> None:
    if disable_until_ts == HMA2_DISABLED:
        repository.update_member(member_pk, enabled=False)
    elif disable_until_ts != HMA2_ENABLED:
        until = dt.datetime.fromtimestamp(disable_until_ts, dt.UTC)
        if until > dt.datetime.now(dt.UTC):
            repository.set_member_disabled_until(member_pk, until)
