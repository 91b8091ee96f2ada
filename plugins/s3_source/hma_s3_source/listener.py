"""``hma s3 listen``: long-polls SQS queues that receive the buckets' ObjectCreated events.

A message is deleted only after every record in it is recorded as content, so a listener
killed mid-batch loses nothing: SQS delivers the message again after its visibility timeout,
and recording is idempotent per object version, so the redelivery doubles nothing. A message
that is not an S3 event at all is logged and deleted (it holds no object to lose); one whose
records cannot be written now (the database is down) is left for redelivery.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from hma_framework.runtime import Runtime
from hma_s3_source.events import EventFormatError, parse_document
from hma_s3_source.intake import record_events
from hma_s3_source.objects import client
from hma_s3_source.s3_settings import S3Settings, s3_settings

log = logging.getLogger(__name__)

#: Seconds to wait after a failed receive or record before trying again.
ERROR_BACKOFF_SECONDS = 2.0


def listening_enabled(settings: Any) -> bool:
    """Whether ``hma serve`` runs the listener: only when queues are configured."""
    return bool(s3_settings(settings).queue_urls)


def run_listener(runtime: Runtime, stop: threading.Event | None = None) -> None:
    """Poll every configured queue (one thread each) until SIGTERM/SIGINT or ``stop``."""
    s3 = s3_settings(runtime.settings)
    if not s3.queue_urls:
        raise SystemExit("no SQS queues to listen to: set HMA_S3_QUEUE_URLS")
    stop = stop if stop is not None else threading.Event()
    if threading.current_thread() is threading.main_thread():
        _stop_on_signals(stop)
    threads = [
        threading.Thread(
            target=poll_queue, args=(runtime, s3, url, stop), name=f"sqs-{n}", daemon=True
        )
        for n, url in enumerate(s3.queue_urls)
    ]
    for thread in threads:
        thread.start()
    log.info("listening to %d SQS queue(s)", len(threads))
    for thread in threads:
        thread.join()


def _stop_on_signals(stop: threading.Event) -> None:
    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def poll_queue(
    runtime: Runtime, s3: S3Settings, queue_url: str, stop: threading.Event, sqs: Any = None
) -> None:
    """Receive, record, then delete each batch with one ``DeleteMessageBatch`` call: a boto3
    call costs the listener more CPU than recording an object, so one per message showed."""
    if sqs is None:
        sqs = client(s3, "sqs", read_timeout=s3.wait_seconds + 10)
    while not stop.is_set():
        try:
            answer = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=s3.wait_seconds,
            )
        except Exception:
            log.exception("receiving from %s failed; retrying", queue_url)
            stop.wait(ERROR_BACKOFF_SECONDS)
            continue
        recorded = []
        failed = False
        for message in answer.get("Messages", []):
            if not handle_message(runtime, s3, message):
                failed = True
                break  # the rest of the batch comes back after its visibility timeout
            recorded.append(message)
        delete_messages(sqs, queue_url, recorded)
        if failed:
            stop.wait(ERROR_BACKOFF_SECONDS)


def handle_message(runtime: Runtime, s3: S3Settings, message: dict[str, Any]) -> bool:
    """Record one message's objects; False if it must be delivered again (not deleted)."""
    try:
        events = parse_document(message.get("Body", ""))
    except EventFormatError as exc:
        log.error("deleting SQS message %s: not an S3 event (%s)", message.get("MessageId"), exc)
        return True
    try:
        tally = record_events(runtime, s3, events)
    except Exception:
        log.exception(
            "recording SQS message %s failed; it will be redelivered", message.get("MessageId")
        )
        return False
    log.info(
        "SQS message %s: %d recorded, %d already known, %d skipped",
        message.get("MessageId"),
        tally.recorded,
        tally.unchanged,
        tally.skipped,
    )
    return True


def delete_messages(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    """Delete recorded messages (at most 10, a receive's batch) in one call. A message whose
    deletion fails is redelivered and then an unchanged resubmission: logged, not retried."""
    if not messages:
        return
    entries = [
        {"Id": str(number), "ReceiptHandle": message["ReceiptHandle"]}
        for number, message in enumerate(messages)
    ]
    try:
        answer = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except Exception:
        log.exception("deleting %d SQS message(s) failed", len(entries))
        return
    for failure in answer.get("Failed", []):
        log.error("deleting SQS message %s failed: %s", failure.get("Id"), failure.get("Message"))
