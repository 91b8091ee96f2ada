"""The index manager: one in-memory index per signal type, fresh from the change log.

Each process that matches keeps one manager. Before answering, it applies the change-log
entries past its own ``seq`` if it last looked more than ``refresh_interval`` ago (a quarter
of a second by default), so a hash added to a bank matches everywhere within a second. What
an index returns is resolved against the database (members, banks, thresholds, kill switches),
so disabling a bank or member takes effect on the very next query, without touching the index.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from sqlalchemy import select
from threatexchange.signal_type.signal_base import SimpleSignalType, TrivialSignalTypeIndex

from hma_framework.index import shared_snapshots, snapshots
from hma_framework.index.holders import Holder, HolderCache
from hma_framework.index.simple import ExactMatchIndex, LinearScanIndex
from hma_framework.process_tools import give_back_freed_memory
from hma_framework.registry import Registry
from hma_framework.settings import Settings
from hma_framework.store.banks import SIGNAL_ADDED, SIGNAL_REMOVED, Banks
from hma_framework.store.db import Store
from hma_framework.store.signal_scan import iter_signal_rows
from hma_framework.store.tables import BankRow, SignalRow
from hma_framework.types import IndexMatch, IndexRecord, SignalIndex

log = logging.getLogger(__name__)


@attrs.frozen
class BankMatch:
    """A match resolved to the bank member that holds the matching signal."""

    signal_type: str
    signal_pk: int
    stored_signal: str
    distance: int
    bank_pk: int
    bank_name: str
    bank_tags: tuple[str, ...]
    member_pk: int
    member_content_id: str | None
    member_tags: tuple[str, ...]
    member_notes: str
    exchange: str | None = None
    exchange_metadata: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class _LiveIndex:
    index: SignalIndex
    seq: int


class _Runs:
    """Change-log entries handed to each index a run at a time, in log order.

    A fetched batch logs thousands of additions in a row; one ``add`` call per entry cost an
    index holder ~25 ms of CPU per thousand entries (numpy conversion and bookkeeping per
    call), which every matching process pays. Consecutive entries of one kind for one index
    go in one call; a change of kind flushes the run first, so order within an index holds.
    """

    def __init__(self) -> None:
        self._open: dict[int, tuple[SignalIndex, str, list[Any]]] = {}

    def add(self, index: SignalIndex, kind: str, item: Any) -> None:
        run = self._open.get(id(index))
        if run is not None and run[1] != kind:
            self._apply(self._open.pop(id(index)))
            run = None
        if run is None:
            run = self._open[id(index)] = (index, kind, [])
        run[2].append(item)

    def flush(self) -> None:
        for run in self._open.values():
            self._apply(run)
        self._open.clear()

    @staticmethod
    def _apply(run: tuple[SignalIndex, str, list[Any]]) -> None:
        index, kind, items = run
        if kind == SIGNAL_ADDED:
            index.add(items)
        else:
            index.remove(items)


class IndexManager:
    """Builds, refreshes, snapshots and queries the indexes of one process. Thread-safe."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: Store,
        *,
        refresh_interval: float | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._store = store
        self._banks = Banks(store)
        self.refresh_interval = (
            settings.index.refresh_interval_ms / 1000
            if refresh_interval is None
            else refresh_interval
        )
        self._lock = threading.RLock()
        self._live: dict[str, _LiveIndex] = {}
        self._seq = 0
        self._checked_at = 0.0
        self._refreshed_at = 0.0  # wall clock of the last look at the change log
        self._loaded = False
        self._thresholds: list[dict[str, int]] = []
        self._holders = HolderCache(store)
        #: How each index was filled: "snapshot", "shared" (the database's), or "records".
        self.loaded_from: dict[str, str] = {}
        self._stamps: dict[str, tuple[int, int] | None] = {}  # the snapshot each index is from
        self._adopting: threading.Thread | None = None

    # --- construction --------------------------------------------------------------------

    def new_index(self, signal_type: str) -> SignalIndex:
        record = self._registry.indexes.get(signal_type)
        if record is not None:
            return record.factory(self._settings)
        cls = self._registry.signal_types[signal_type].signal_type
        index_cls = cls.get_index_cls()
        exact = isinstance(index_cls, type) and issubclass(index_cls, TrivialSignalTypeIndex)
        # A SimpleSignalType that names no index compares by string equality: exact too.
        if exact or (index_cls is None and issubclass(cls, SimpleSignalType)):
            return ExactMatchIndex()
        return LinearScanIndex(cls)

    @property
    def snapshot_root(self) -> Path:
        return self._settings.data_path / "index"

    def load(self) -> None:
        """Fill every index: from its snapshot when there is one, else from the records."""
        with self._lock:
            for signal_type in self._registry.signal_types:
                self._live[signal_type] = self._load_one(signal_type)
            self._seq = min((live.seq for live in self._live.values()), default=0)
            self._loaded = True
            self._apply_changes()

    def _load_one(self, signal_type: str) -> _LiveIndex:
        """From the host's snapshot; else built from the records by one process per host.

        The process that builds writes a snapshot and then serves from it too, so every
        process on the host maps the same segment files (their pages are shared).
        """
        record = self._registry.indexes.get(signal_type)
        if record is None or record.loader is None:
            self.loaded_from[signal_type] = "records"
            return self._build_from_records(signal_type)
        loaded = self._load_snapshot(signal_type, record)
        if loaded is not None:
            return loaded
        with snapshots.build_lock(self.snapshot_root, signal_type):
            loaded = self._load_snapshot(signal_type, record)  # built while we waited?
            if loaded is not None:
                return loaded
            if self._settings.index.shared_snapshots and self._fetch_shared(signal_type):
                loaded = self._load_snapshot(signal_type, record)
                if loaded is not None:
                    self.loaded_from[signal_type] = "shared"
                    return loaded
            live = self._build_from_records(signal_type)
            self.loaded_from[signal_type] = "records"
            try:
                saved = snapshots.save(self.snapshot_root, signal_type, live.index, live.seq)
            except OSError:
                log.exception("could not write the %s snapshot; serving the built one", signal_type)
                return live
            if saved:
                shared = self._load_snapshot(signal_type, record)
                if shared is not None:
                    self.loaded_from[signal_type] = "records"
                    del live
                    give_back_freed_memory()  # the built copy: ~100 B a hash, now unused
                    return shared
            return live

    def _fetch_shared(self, signal_type: str) -> bool:
        started = time.monotonic()
        try:
            fetched = shared_snapshots.fetch(self._store, signal_type, self.snapshot_root)
        except Exception:
            log.exception("could not fetch the shared %s snapshot", signal_type)
            return False
        if fetched:
            log.info(
                "%s index: shared snapshot fetched in %.1fs",
                signal_type,
                time.monotonic() - started,
            )
        return fetched

    def _load_snapshot(self, signal_type: str, record: IndexRecord) -> _LiveIndex | None:
        loaded_stamp = snapshots.stamp(self.snapshot_root, signal_type)
        loaded = snapshots.load(self.snapshot_root, signal_type, record, self._settings)
        if loaded is None:
            return None
        index, seq = loaded
        log.info("%s index: snapshot at seq %d, %d entries", signal_type, seq, len(index))
        self.loaded_from[signal_type] = "snapshot"
        self._stamps[signal_type] = loaded_stamp
        return _LiveIndex(index, seq)

    def _build_from_records(self, signal_type: str) -> _LiveIndex:
        started = time.monotonic()
        # Read the log position first: changes racing with the scan are replayed afterwards,
        # and replaying is idempotent (re-adding replaces, removing twice does nothing).
        seq = self._banks.latest_seq()
        index = self.new_index(signal_type)
        for batch in iter_signal_rows(self._store, signal_type):
            index.add(batch)
        log.info(
            "%s index: built from records, %d entries in %.1fs",
            signal_type,
            len(index),
            time.monotonic() - started,
        )
        return _LiveIndex(index, seq)

    # --- freshness -----------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Apply new change-log entries if the last look is older than the refresh interval."""
        with self._lock:
            if not self._loaded:
                self.load()
                return
            if force or time.monotonic() - self._checked_at >= self.refresh_interval:
                self._apply_changes()
                self._adopt_newer_snapshots()

    def _apply_changes(self) -> None:
        self._load_bank_thresholds()
        self._seq = self._replay(self._live, self._seq)
        self._checked_at = time.monotonic()
        self._refreshed_at = time.time()

    def _replay(self, lives: dict[str, _LiveIndex], after: int, upto: int | None = None) -> int:
        """Apply change-log entries past ``after`` (through ``upto``) to ``lives``.

        Returns the last seq applied. An index skips entries at or below its own ``seq``.
        """
        while upto is None or after < upto:
            changes = self._banks.signal_changes_after(after)
            if upto is not None:
                changes = [c for c in changes if c.seq <= upto]
            if not changes:
                break
            added = [c for c in changes if c.kind == SIGNAL_ADDED]
            values = self._signal_values([c.signal_pk for c in added if c.signal_pk is not None])
            runs = _Runs()
            for change in changes:
                live = lives.get(change.signal_type or "")
                if live is None or change.seq <= live.seq or change.signal_pk is None:
                    continue
                if change.kind == SIGNAL_ADDED and change.signal_pk in values:
                    runs.add(live.index, SIGNAL_ADDED, (change.signal_pk, values[change.signal_pk]))
                elif change.kind == SIGNAL_REMOVED:
                    runs.add(live.index, SIGNAL_REMOVED, change.signal_pk)
            runs.flush()
            after = changes[-1].seq
            for live in lives.values():
                live.seq = max(live.seq, after)
        return after

    # --- sharing the host's newest snapshot ---------------------------------------------------

    def _adopt_newer_snapshots(self) -> None:
        """Start adopting snapshots written since each index was loaded (on a thread).

        Merges rebuild segments into this process's private memory; serving from the newest
        snapshot instead puts the host's processes back on the same mapped pages. Checking is
        a ``stat`` per signal type; the load and catch-up happen off the query path.
        """
        if self._adopting is not None and self._adopting.is_alive():
            return
        newer = [
            signal_type
            for signal_type, stamp in self._stamps.items()
            if self._maps_snapshot(signal_type)
            and snapshots.stamp(self.snapshot_root, signal_type) not in (None, stamp)
        ]
        if newer:
            self._adopting = threading.Thread(
                target=self._adopt_quietly, args=(newer,), name="hma-index-adopt", daemon=True
            )
            self._adopting.start()

    def _maps_snapshot(self, signal_type: str) -> bool:
        """Whether the index serves from mapped snapshot files (``MAPS_SNAPSHOT = True``).

        Only those gain from moving to a newer snapshot; others would just reload their copy.
        """
        live = self._live.get(signal_type)
        return live is not None and bool(getattr(live.index, "MAPS_SNAPSHOT", False))

    def _adopt_quietly(self, signal_types: list[str]) -> None:
        try:
            self.adopt_snapshots(signal_types)
        except Exception:  # the current index keeps serving; the next tick tries again
            log.exception("could not adopt the newer index snapshots")

    def adopt_snapshots(self, signal_types: list[str]) -> list[str]:
        """Serve ``signal_types`` from the host's current snapshots; returns those swapped in.

        The snapshot is loaded and caught up from the change log without the lock; only the
        last few changes and the swap happen under it.
        """
        adopted = []
        for signal_type in signal_types:
            record = self._registry.indexes.get(signal_type)
            if record is None or record.loader is None:
                continue
            loaded_stamp = snapshots.stamp(self.snapshot_root, signal_type)
            loaded = snapshots.load(self.snapshot_root, signal_type, record, self._settings)
            if loaded is None:
                continue
            fresh = _LiveIndex(*loaded)
            len(fresh.index)  # settles bulk-loaded parts now, not in a query
            self._replay({signal_type: fresh}, fresh.seq)
            with self._lock:
                self._apply_changes()
                self._replay({signal_type: fresh}, fresh.seq, upto=self._seq)
                fresh.seq = max(fresh.seq, self._seq)
                self._live[signal_type] = fresh
                self._stamps[signal_type] = loaded_stamp
            adopted.append(signal_type)
            log.info("%s index: now served from the snapshot at seq %d", signal_type, loaded[1])
        if adopted:
            give_back_freed_memory()  # the private copies the mapped snapshots replaced
        return adopted

    def _signal_values(self, signal_pks: list[int]) -> dict[int, str]:
        values: dict[int, str] = {}
        with self._store.reading() as session:
            for start in range(0, len(signal_pks), 900):
                chunk = signal_pks[start : start + 900]
                values.update(
                    session.execute(
                        select(SignalRow.id, SignalRow.signal_value).where(SignalRow.id.in_(chunk))
                    ).all()
                )
        return values

    @property
    def loaded(self) -> bool:
        """Whether every index has been filled (``load`` ran)."""
        return self._loaded

    @property
    def refreshed_at(self) -> float:
        """Unix time up to which bank changes are applied (0 before the first load)."""
        return self._refreshed_at

    @property
    def seq(self) -> int:
        return self._seq

    def size(self, signal_type: str) -> int:
        with self._lock:
            live = self._live.get(signal_type)
            return len(live.index) if live else 0

    # --- snapshots -----------------------------------------------------------------------

    def save_snapshots(self) -> dict[str, int]:
        """Write every index that can be snapshotted; returns entries saved per signal type."""
        self.refresh(force=True)
        saved = {}
        with self._lock:
            for signal_type, live in self._live.items():
                if snapshots.save(self.snapshot_root, signal_type, live.index, live.seq):
                    saved[signal_type] = len(live.index)
        # Serve from what was just written: this process's merged segments go back to pages
        # every process on the host shares (the others move over on their next refresh).
        self.adopt_snapshots([t for t in saved if self._maps_snapshot(t)])
        if self._settings.index.shared_snapshots:
            # Outside the lock: queries go on while the files are copied into the database.
            with snapshots.build_lock(self.snapshot_root, "publish"):
                for signal_type in saved:
                    shared_snapshots.publish(
                        self._store, signal_type, self.snapshot_root / signal_type
                    )
        return saved

    # --- queries -------------------------------------------------------------------------

    def search(self, signal_type: str, signal: str, max_distance: int) -> list[IndexMatch]:
        """Raw index entries within ``max_distance`` (fresh within the refresh interval)."""
        self.refresh()
        return self._query(signal_type, [signal], max_distance)[0]

    def _query(
        self, signal_type: str, signals: Sequence[str], max_distance: int
    ) -> list[list[IndexMatch]]:
        with self._lock:
            live = self._live.get(signal_type)
            if live is None:
                raise KeyError(f"no index for signal type {signal_type!r}")
            if len(signals) == 1:  # one content's signal: the single query costs less
                return [live.index.query(signals[0], max_distance)]
            return live.index.query_batch(list(signals), max_distance)

    def match(
        self, signal_type: str, signal: str, banks: Collection[str] | None = None
    ) -> list[BankMatch]:
        """Bank members whose signal matches, under each bank's threshold and kill switches."""
        return self.match_many(signal_type, [signal], banks)[0]

    def _load_bank_thresholds(self) -> None:
        # Banks are few: their thresholds are re-read on every refresh tick, so the widest
        # search radius follows threshold changes within the refresh interval.
        with self._store.reading() as session:
            self._thresholds = list(
                session.scalars(select(BankRow.thresholds).where(BankRow.enabled.is_(True)))
            )

    def _widest_threshold(self, signal_type: str, default: int) -> int:
        with self._lock:
            thresholds = self._thresholds
        return max([default, *(int(t.get(signal_type, default)) for t in thresholds)])

    def match_many(
        self, signal_type: str, signals: Sequence[str], banks: Collection[str] | None = None
    ) -> list[list[BankMatch]]:
        """``match`` for many signals of one type, answered in order.

        One batched index query and one holder resolution (one change-log read) for all of
        them: per signal, those two cost more than the rest of a batch submission's item.
        """
        default = self._registry.signal_types[signal_type].default_threshold
        self.refresh()
        found_per_signal = self._query(
            signal_type, signals, self._widest_threshold(signal_type, default)
        )
        wanted = {m.entry_id for found in found_per_signal for m in found}
        if not wanted:
            return [[] for _ in signals]
        holders = self._holders.holders(wanted)
        return [
            self._bank_matches(signal_type, found, holders, default, banks)
            for found in found_per_signal
        ]

    def _bank_matches(
        self,
        signal_type: str,
        found: list[IndexMatch],
        holders_by_signal: Mapping[int, list[Holder]],
        default: int,
        banks: Collection[str] | None,
    ) -> list[BankMatch]:
        """The holders of ``found`` that match under their bank's threshold and switches."""
        distances = {m.entry_id: m.distance for m in found}
        now = dt.datetime.now(dt.UTC)
        matches = []
        for signal_pk, distance in distances.items():
            for holder in holders_by_signal.get(signal_pk, []):
                if banks is not None and holder.bank_name not in banks:
                    continue
                if holder.disabled_at(now):
                    continue
                if distance > int(holder.thresholds.get(signal_type, default)):
                    continue
                matches.append(
                    BankMatch(
                        signal_type=signal_type,
                        signal_pk=signal_pk,
                        stored_signal=holder.stored_signal,
                        distance=distance,
                        bank_pk=holder.bank_pk,
                        bank_name=holder.bank_name,
                        bank_tags=holder.bank_tags,
                        member_pk=holder.member_pk,
                        member_content_id=holder.member_content_id,
                        member_tags=holder.member_tags,
                        member_notes=holder.member_notes,
                        exchange=holder.exchange,
                        exchange_metadata=holder.exchange_metadata,
                    )
                )
        return sorted(matches, key=lambda m: (m.distance, m.bank_name, m.member_pk))
