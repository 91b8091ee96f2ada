"""Automatic retroaction: when banks gain members, recent content is matched against them.

Whatever adds members (the API, an import, an exchange fetch) calls
:func:`request_retroaction`; it enqueues one ``retroact`` job on the ``retroact`` queue
unless one is already waiting, so a burst of additions is coalesced into one pass. A pass
takes the members past its cursor (``retroaction_cursor``), syncs this host's ring of recent
content signals from the database, streams the ring through an index of the members'
signals, records retroactive matches and evaluates action rules, then moves the cursor. The
scheduler also runs a pass every ``sweep_interval_seconds``: additions whose trigger was lost
(Redis restarted, a CLI import without a queue) are still found, and the ring stays warm.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select

from hma_framework.index.holders import Holder
from hma_framework.pipeline.context import current_runtime
from hma_framework.retroaction import rescans
from hma_framework.retroaction.matching import act_on, build_probe, record_retroactive, scan
from hma_framework.retroaction.ring_sync import open_ring, sync_rings, window_start
from hma_framework.runtime import Runtime
from hma_framework.store.tables import (
    BankMemberRow,
    MemberSignalRow,
    RetroactionCursorRow,
    SignalRow,
    utcnow,
)

log = logging.getLogger(__name__)

CURSOR_NAME = "automatic"
PENDING_KEY = "hma:retroact:pending"
LOCK_KEY = "hma:retroact:lock"
MEMBER_BATCH = 10_000


def request_retroaction(runtime: Runtime) -> bool:
    """Ask for a pass over members added since the last; False if one is already waiting.

    Never fails the caller: the members are in the database, and the periodic sweep finds
    them if Redis is down now.
    """
    if runtime.settings.retroaction.window_hours == 0:
        return False
    try:
        if not runtime.redis.set(PENDING_KEY, "1", nx=True, ex=3600):
            return False
        runtime.queues["retroact"].enqueue(
            retroact, result_ttl=300, failure_ttl=7 * 24 * 3600, job_timeout=3600
        )
    except RedisError:
        log.warning("could not enqueue retroaction; the periodic sweep will run it")
        return False
    return True


def retroact() -> dict[str, Any]:
    """The ``retroact`` job (also the periodic sweep)."""
    runtime = current_runtime()
    runtime.redis.delete(PENDING_KEY)  # additions from now on ask for another pass
    resumed = rescans.resume_stalled(runtime)
    with runtime.redis.lock(LOCK_KEY, timeout=3600, blocking_timeout=3600):
        return {**run_pass(runtime), "rescans_resumed": resumed}


def _cursor(runtime: Runtime) -> int:
    with runtime.store.reading() as session:
        row = session.get(RetroactionCursorRow, CURSOR_NAME)
        return row.position if row is not None else 0


def _move_cursor(runtime: Runtime, position: int) -> None:
    with runtime.store.transaction() as session:
        row = session.get(RetroactionCursorRow, CURSOR_NAME)
        if row is None:
            session.add(RetroactionCursorRow(name=CURSOR_NAME, position=position))
        else:
            row.position, row.updated_at = position, utcnow()


def _new_member_signals(
    runtime: Runtime, after: int
) -> tuple[int, dict[str, dict[int, str]], set[int]]:
    """Up to a batch of members past ``after``: (last member id, signals by type, members)."""
    with runtime.store.reading() as session:
        member_pks = list(
            session.scalars(
                select(BankMemberRow.id)
                .where(BankMemberRow.id > after)
                .order_by(BankMemberRow.id)
                .limit(MEMBER_BATCH)
            )
        )
        if not member_pks:
            return after, {}, set()
        rows = session.execute(
            select(SignalRow.signal_type, SignalRow.id, SignalRow.signal_value)
            .join(MemberSignalRow, MemberSignalRow.signal_pk == SignalRow.id)
            .where(
                MemberSignalRow.member_pk > after,
                MemberSignalRow.member_pk <= member_pks[-1],
            )
        ).all()
    by_type: dict[str, dict[int, str]] = defaultdict(dict)
    for signal_type, signal_pk, value in rows:
        by_type[signal_type][signal_pk] = value
    return member_pks[-1], by_type, set(member_pks)


def _held_by(member_pks: set[int]) -> Callable[[Holder], bool]:
    return lambda holder: holder.member_pk in member_pks


def run_pass(runtime: Runtime) -> dict[str, Any]:
    """Match recent content against members added since the last pass; what it did."""
    settings = runtime.settings
    report = {"members": 0, "signals": 0, "scanned": 0, "matched_content": 0, "acted": 0}
    if settings.retroaction.window_hours == 0:
        return {**report, "skipped": "retroaction window is 0"}
    since = window_start(settings)
    synced = False
    cursor = _cursor(runtime)
    while True:
        last, by_type, members = _new_member_signals(runtime, cursor)
        if not synced:
            rings = {
                t: open_ring(settings, runtime.registry, t) for t in runtime.registry.signal_types
            }
            sync_rings(runtime.store, rings, since, settings.retroaction.gap_wait_seconds)
            synced = True
        if not members:
            return report
        report["members"] += len(members)
        for signal_type, signals in by_type.items():
            if signal_type not in runtime.registry.signal_types:
                continue
            report["signals"] += len(signals)
            probe = build_probe(
                runtime,
                signal_type,
                sorted(signals.items()),
                _held_by(members),
            )
            if probe is None:
                continue
            ring = open_ring(settings, runtime.registry, signal_type)
            batches = (
                (r["pk"], r["value"])
                for r in ring.scan(since.timestamp(), settings.retroaction.scan_batch)
            )
            for scanned, found in scan(probe, batches):
                report["scanned"] += scanned
                gained = record_retroactive(runtime, found)
                report["matched_content"] += len(gained)
                report["acted"] += act_on(runtime, gained)
        _move_cursor(runtime, last)
        cursor = last
