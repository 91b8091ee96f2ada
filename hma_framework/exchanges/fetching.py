"""The ``fetch`` queue's job, its fleet-wide lease, triggers and the schedule.

One fetch per exchange runs at a time across the fleet: the job takes a Redis lock whose
lease a thread renews while the fetch runs (:mod:`.lease`). A second trigger while one runs
finds the lock taken and does nothing; a worker killed mid-fetch stops renewing, the lease
runs out and the next trigger resumes from the checkpoint committed with the last batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Any

import cattrs
from redis.exceptions import LockError
from redis.lock import Lock
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import select, update

from hma_framework.actions.handlers import blank_secrets
from hma_framework.exchanges.configs import ExchangeNotFoundError, Exchanges, exchanges_of
from hma_framework.exchanges.lease import LeaseKeeper
from hma_framework.exchanges.prefetch import prefetched
from hma_framework.exchanges.records import RecordConverter
from hma_framework.exchanges.sync import apply_batch, remove_unseen
from hma_framework.pipeline.context import current_runtime
from hma_framework.runtime import Runtime
from hma_framework.store.banks import NewMember
from hma_framework.store.tables import BankRow, ExchangeCheckpointRow, ExchangeRow, utcnow

log = logging.getLogger(__name__)

FETCHING, SUCCEEDED, FAILED = "fetching", "succeeded", "failed"
#: A first fetch of a large exchange (1M records on a busy host) outlasts the queues' default
#: job timeout (10 minutes); the lease, not the timeout, keeps fetches from overlapping.
FETCH_JOB_TIMEOUT_SECONDS = 6 * 3600
_checkpoints = cattrs.Converter()


def lock_name(exchange_pk: int) -> str:
    return f"hma:exchange-fetch:{exchange_pk}"


def fetch_lock(runtime: Runtime, exchange_pk: int) -> Lock:
    return Lock(
        runtime.redis,
        lock_name(exchange_pk),
        timeout=runtime.settings.exchanges.lease_seconds,
        blocking=False,
        thread_local=False,  # the lease keeper's thread renews it
    )


def job_id(exchange_pk: int) -> str:
    return f"fetch-exchange-{exchange_pk}"


def is_fetching(runtime: Runtime, exchange_pk: int) -> bool:
    return bool(runtime.redis.exists(lock_name(exchange_pk)))


def _queued(runtime: Runtime, exchange_pk: int) -> bool:
    try:
        job = Job.fetch(job_id(exchange_pk), connection=runtime.redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.SCHEDULED)


def trigger(runtime: Runtime, exchange_pk: int) -> bool:
    """Enqueue a fetch unless one is queued or running; True when one was enqueued."""
    if is_fetching(runtime, exchange_pk) or _queued(runtime, exchange_pk):
        return False
    runtime.queues["fetch"].enqueue(
        fetch_exchange,
        exchange_pk,
        job_id=job_id(exchange_pk),
        job_timeout=FETCH_JOB_TIMEOUT_SECONDS,
        result_ttl=0,
        failure_ttl=24 * 3600,
    )
    return True


def exchange_pk(runtime: Runtime, name: str) -> int:
    with runtime.store.reading() as session:
        found = session.scalar(select(ExchangeRow.id).where(ExchangeRow.name == name))
    if found is None:
        raise ExchangeNotFoundError(f"no exchange named {name!r}")
    return int(found)


def trigger_by_name(runtime: Runtime, name: str) -> bool:
    return trigger(runtime, exchange_pk(runtime, name))


def enqueue_due_fetches() -> str:
    """The scheduler's tick: a fetch for each enabled exchange whose interval has passed."""
    runtime = current_runtime()
    now = utcnow()
    with runtime.store.reading() as session:
        rows = session.execute(
            select(
                ExchangeRow.id, ExchangeRow.last_started_at, ExchangeRow.fetch_interval_seconds
            ).where(ExchangeRow.enabled.is_(True))
        ).all()
    due = [
        pk
        for pk, started, interval in rows
        if started is None or now - started >= dt.timedelta(seconds=interval)
    ]
    enqueued = sum(trigger(runtime, pk) for pk in due)
    return f"{enqueued} exchange fetch(es) enqueued"


def _load_checkpoint(runtime: Runtime, exchange_pk: int, api: Any) -> Any:
    with runtime.store.reading() as session:
        row = session.get(ExchangeCheckpointRow, exchange_pk)
        stored = None if row is None else dict(row.checkpoint)
    if stored is None:
        return None
    return _checkpoints.structure(stored, api.get_checkpoint_cls())


def _start(runtime: Runtime, exchange_pk: int) -> ExchangeRow | None:
    with runtime.store.transaction() as session:
        row = session.get(ExchangeRow, exchange_pk)
        if row is None:
            return None
        row.last_started_at = row.last_fetch_at = utcnow()
        row.last_fetch_status = FETCHING
        row.items_added = row.items_updated = row.items_deleted = row.items_skipped = 0
        row.up_to_date = False
        session.flush()
        session.expunge(row)
        return row


def _finish(runtime: Runtime, exchange_pk: int, error: str | None) -> None:
    values: dict[str, Any] = {"last_fetch_status": FAILED if error else SUCCEEDED}
    values["last_error"] = error
    if error is None:
        values["last_succeeded_at"] = utcnow()
        values["up_to_date"] = True
    with runtime.store.transaction() as session:
        session.execute(update(ExchangeRow).where(ExchangeRow.id == exchange_pk).values(values))


def fetch_exchange(exchange_pk: int) -> str:
    """Fetch one exchange to the end, or do nothing if another worker is fetching it."""
    runtime = current_runtime()
    lock = fetch_lock(runtime, exchange_pk)
    if not lock.acquire():
        return "another worker is fetching this exchange"
    try:
        row = _start(runtime, exchange_pk)
        if row is None:
            return "exchange deleted"
        exchanges = exchanges_of(runtime)
        try:
            with LeaseKeeper(lock, runtime.settings.exchanges.lease_seconds) as lease:
                return _run(runtime, exchanges, row, lease)
        except Exception as exc:
            message = blank_secrets(
                f"{type(exc).__name__}: {exc}", exchanges.credential_values(row)
            )
            log.warning("fetch of exchange %s failed: %s", row.name, message)
            _finish(runtime, exchange_pk, message[:2000])
            return f"failed: {message}"
    finally:
        # The lease may have run out; whoever holds it now keeps it.
        with contextlib.suppress(LockError):
            lock.release()


def _run(runtime: Runtime, exchanges: Exchanges, row: ExchangeRow, lease: LeaseKeeper) -> str:
    record, client = exchanges.client_for(row)
    with runtime.store.reading() as session:
        bank_pk = session.scalar(select(BankRow.id).where(BankRow.exchange_pk == row.id))
    if bank_pk is None:
        raise RuntimeError("the exchange has no bank (it was deleted); recreate the exchange")
    signal_types = [r.signal_type for r in runtime.registry.signal_types.values()]
    # Some library clients (sample) keep no collaboration config; conversion still needs one.
    collab = getattr(client, "collab", None) or exchanges.collab(record, row.name, row.config)
    converter = RecordConverter(row.name, record.api, collab, signal_types)
    checkpoint = None if record.full_snapshot else _load_checkpoint(runtime, row.id, record.api)
    batch_size = runtime.settings.exchanges.batch_size
    pending: dict[str, NewMember | None] = {}
    seen: set[str] = set()
    last_checkpoint: Any = None

    def commit() -> None:
        lease.check()  # never commit after another worker took the fetch over
        skipped, converter.skipped = converter.skipped, 0
        stored = None if last_checkpoint is None else _checkpoints.unstructure(last_checkpoint)
        apply_batch(runtime.store, row.id, bank_pk, pending, stored, skipped)
        pending.clear()

    for delta in prefetched(client.fetch_iter(signal_types, checkpoint)):
        batch = converter.batch(delta.updates)
        pending.update(batch)
        if record.full_snapshot:
            seen.update(ext for ext, member in batch.items() if member is not None)
        last_checkpoint = delta.checkpoint
        if len(pending) >= batch_size:
            commit()
    commit()
    if record.full_snapshot:
        remove_unseen(runtime.store, row.id, bank_pk, seen)
    _finish(runtime, row.id, None)
    return "fetched"


def status(runtime: Runtime, name: str) -> dict[str, Any]:
    """``GET /exchanges/<name>/status``."""
    with runtime.store.reading() as session:
        row = session.scalars(select(ExchangeRow).where(ExchangeRow.name == name)).one_or_none()
        if row is None:
            raise ExchangeNotFoundError(f"no exchange named {name!r}")
        stored = session.get(ExchangeCheckpointRow, row.id)
        checkpoint = None if stored is None else dict(stored.checkpoint)
        session.expunge(row)
    state = "idle"
    if is_fetching(runtime, row.id):
        state = FETCHING
    elif row.last_fetch_status == FAILED:
        state = FAILED
    return {
        "state": state,
        "last_started": _iso(row.last_started_at),
        "last_succeeded": _iso(row.last_succeeded_at),
        "checkpoint_time": _checkpoint_time(runtime, row.api_type, checkpoint),
        "items_added": row.items_added,
        "items_updated": row.items_updated,
        "items_deleted": row.items_deleted,
        "items_skipped": row.items_skipped,
        "up_to_date": bool(row.up_to_date) and state != FETCHING,
        "last_error": row.last_error,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _checkpoint_time(runtime: Runtime, api: str, stored: dict[str, Any] | None) -> str | None:
    record = runtime.registry.exchanges.get(api)
    if stored is None or record is None:
        return None
    try:
        progress = _checkpoints.structure(stored, record.api.get_checkpoint_cls())
        timestamp = progress.get_progress_timestamp()
    except Exception:
        return None
    if not timestamp:
        return None
    return dt.datetime.fromtimestamp(int(timestamp), dt.UTC).isoformat()
