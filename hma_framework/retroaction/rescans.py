"""Full rescans: stored content signals over any period matched against some or all banks.

A rescan is a ``retroaction_scan`` row (the truth about its progress) and a job on the
``retroact`` queue. The job indexes the chosen banks' signals, streams ``content_signal``
rows of the period through them in id order, and after each batch records matches, runs
action rules and moves the row's ``cursor`` in the same breath, so a killed worker's rescan
resumes where it stopped (the periodic sweep re-enqueues rescans whose job is gone). One
rescan at a time per bank set: ``active_key`` is unique while a rescan is queued or running.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from hma_framework.index.holders import Holder
from hma_framework.pipeline.context import current_runtime
from hma_framework.retroaction.matching import (
    Probe,
    act_on,
    build_probe,
    raw_values,
    record_retroactive,
    scan,
)
from hma_framework.runtime import Runtime
from hma_framework.store.banks import BankNotFoundError
from hma_framework.store.content import SIGNAL_OK
from hma_framework.store.tables import (
    BankMemberRow,
    BankRow,
    ContentSignalRow,
    MemberSignalRow,
    RetroactionScanRow,
    SignalRow,
    utcnow,
)

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ALL_BANKS = "*"
SCAN_BATCH = 20_000


class RescanConflict(Exception):
    """A rescan of the same bank set is already queued or running."""

    def __init__(self, scan_pk: int) -> None:
        super().__init__(f"rescan {scan_pk} of the same banks is still running")
        self.scan_pk = scan_pk


def _bank_key(banks: Sequence[str]) -> str:
    return ",".join(sorted(set(banks))) or ALL_BANKS


def start_rescan(
    runtime: Runtime, since: dt.datetime, until: dt.datetime, banks: Sequence[str] = ()
) -> int:
    """Record and enqueue a rescan; raises BankNotFoundError or RescanConflict."""
    key = _bank_key(banks)
    job_id = f"rescan-{secrets.token_hex(6)}"
    try:
        with runtime.store.transaction() as session:
            known = set(session.scalars(select(BankRow.name).where(BankRow.name.in_(banks))))
            missing = sorted(set(banks) - known)
            if missing:
                raise BankNotFoundError(f"no bank named {missing[0]!r}")
            total = session.scalar(
                select(func.count())
                .select_from(ContentSignalRow)
                .where(ContentSignalRow.created_at >= since, ContentSignalRow.created_at < until)
            )
            row = RetroactionScanRow(
                banks=sorted(set(banks)),
                active_key=key,
                since=since,
                until=until,
                state=QUEUED,
                total=int(total or 0),
                scanned=0,
                matched=0,
                cursor=0,
                job_id=job_id,
            )
            session.add(row)
            session.flush()
            scan_pk = row.id
    except IntegrityError:
        with runtime.store.reading() as session:
            active = session.scalar(
                select(RetroactionScanRow.id).where(RetroactionScanRow.active_key == key)
            )
        raise RescanConflict(int(active or 0)) from None
    _enqueue(runtime, scan_pk, job_id)
    return scan_pk


def _enqueue(runtime: Runtime, scan_pk: int, job_id: str) -> None:
    runtime.queues["retroact"].enqueue(
        run_rescan,
        scan_pk,
        job_id=job_id,
        job_timeout=6 * 3600,
        result_ttl=300,
        failure_ttl=7 * 24 * 3600,
    )


def describe(runtime: Runtime, scan_pk: int) -> dict[str, Any] | None:
    with runtime.store.reading() as session:
        row = session.get(RetroactionScanRow, scan_pk)
    if row is None:
        return None
    return {
        "id": row.id,
        "state": row.state,
        "banks": list(row.banks),
        "since": row.since.isoformat(),
        "until": row.until.isoformat(),
        "total": row.total,
        "scanned": row.scanned,
        "matched": row.matched,
        "error": row.error,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


def _probes(runtime: Runtime, banks: Sequence[str]) -> dict[str, Probe]:
    """One probe per signal type over the chosen banks' enabled members' signals."""
    query = (
        select(SignalRow.signal_type, SignalRow.id, SignalRow.signal_value)
        .join(MemberSignalRow, MemberSignalRow.signal_pk == SignalRow.id)
        .join(BankMemberRow, BankMemberRow.id == MemberSignalRow.member_pk)
        .join(BankRow, BankRow.id == BankMemberRow.bank_pk)
        .where(BankRow.enabled.is_(True), BankMemberRow.enabled.is_(True))
        .distinct()
    )
    if banks:
        query = query.where(BankRow.name.in_(banks))
    by_type: dict[str, dict[int, str]] = defaultdict(dict)
    with runtime.store.reading() as session:
        for signal_type, signal_pk, value in session.execute(query):
            by_type[signal_type][signal_pk] = value
    wanted = set(banks)

    def keep(holder: Holder) -> bool:
        return not wanted or holder.bank_name in wanted

    probes = {}
    for signal_type, signals in by_type.items():
        if signal_type in runtime.registry.signal_types:
            probe = build_probe(runtime, signal_type, sorted(signals.items()), keep)
            if probe is not None:
                probes[signal_type] = probe
    return probes


def run_rescan(scan_pk: int) -> dict[str, Any] | None:
    """The rescan job: resumes from the row's cursor; records progress after every batch."""
    runtime = current_runtime()
    job = get_current_job()
    with runtime.store.transaction() as session:
        row = session.get(RetroactionScanRow, scan_pk)
        if row is None or row.state in (DONE, FAILED):
            return None
        if job is not None and row.job_id != job.id:
            return None  # superseded: the rescan was resumed under another job
        row.state, row.updated_at = RUNNING, utcnow()
        since, until, cursor, banks = row.since, row.until, row.cursor, list(row.banks)
    try:
        probes = _probes(runtime, banks)
        while True:
            with runtime.store.reading() as session:
                rows = session.execute(
                    select(
                        ContentSignalRow.id,
                        ContentSignalRow.signal_type,
                        ContentSignalRow.content_pk,
                        ContentSignalRow.signal_value,
                    )
                    .where(
                        ContentSignalRow.id > cursor,
                        ContentSignalRow.created_at >= since,
                        ContentSignalRow.created_at < until,
                        ContentSignalRow.status == SIGNAL_OK,
                    )
                    .order_by(ContentSignalRow.id)
                    .limit(SCAN_BATCH)
                ).all()
            if not rows:
                break
            matched = _scan_rows(runtime, probes, rows)
            cursor = int(rows[-1][0])
            with runtime.store.transaction() as session:
                session.execute(
                    update(RetroactionScanRow)
                    .where(RetroactionScanRow.id == scan_pk)
                    .values(
                        cursor=cursor,
                        scanned=RetroactionScanRow.scanned + len(rows),
                        matched=RetroactionScanRow.matched + matched,
                        updated_at=utcnow(),
                    )
                )
    except Exception as exc:
        _finish(runtime, scan_pk, FAILED, f"{type(exc).__name__}: {exc}")
        raise
    _finish(runtime, scan_pk, DONE)
    return describe(runtime, scan_pk)


def _scan_rows(runtime: Runtime, probes: dict[str, Probe], rows: Sequence[Any]) -> int:
    by_type: dict[str, tuple[list[int], list[str]]] = defaultdict(lambda: ([], []))
    for _, signal_type, content_pk, value in rows:
        if signal_type in probes:
            by_type[signal_type][0].append(content_pk)
            by_type[signal_type][1].append(value)
    gained: set[int] = set()
    for signal_type, (pks, values) in by_type.items():
        for _, found in scan(probes[signal_type], [(pks, raw_values(values))]):
            gained |= record_retroactive(runtime, found)
    act_on(runtime, gained)
    return len(gained)


def _finish(runtime: Runtime, scan_pk: int, state: str, error: str | None = None) -> None:
    with runtime.store.transaction() as session:
        session.execute(
            update(RetroactionScanRow)
            .where(RetroactionScanRow.id == scan_pk)
            .values(
                state=state,
                active_key=None,
                error=error[:2000] if error else None,
                finished_at=utcnow(),
                updated_at=utcnow(),
            )
        )


def resume_stalled(runtime: Runtime) -> int:
    """Re-enqueue queued or running rescans whose job is gone (a killed worker, lost Redis)."""
    with runtime.store.reading() as session:
        active = session.execute(
            select(RetroactionScanRow.id, RetroactionScanRow.job_id).where(
                RetroactionScanRow.state.in_((QUEUED, RUNNING))
            )
        ).all()
    resumed = 0
    for scan_pk, job_id in active:
        if job_id and _job_alive(runtime, job_id):
            continue
        new_job = f"rescan-{secrets.token_hex(6)}"
        with runtime.store.transaction() as session:
            session.execute(
                update(RetroactionScanRow)
                .where(RetroactionScanRow.id == scan_pk, RetroactionScanRow.job_id == job_id)
                .values(job_id=new_job, updated_at=utcnow())
            )
        log.warning("rescan %d lost its job; resuming it", scan_pk)
        _enqueue(runtime, scan_pk, new_job)
        resumed += 1
    return resumed


def _job_alive(runtime: Runtime, job_id: str) -> bool:
    try:
        job = Job.fetch(job_id, connection=runtime.redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.STARTED:
        # A worker that died mid-job leaves it "started"; its heartbeat key says otherwise.
        return bool(job.worker_name) and bool(runtime.redis.exists(f"rq:worker:{job.worker_name}"))
    return status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)
