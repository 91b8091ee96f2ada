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


def poll_queue(runtime: Runtime, s3: S3Settings, queue_url: str, stop: threading.Event) -> None:
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
        for message in answer.get("Messages", []):
            if not handle_message(runtime, s3, sqs, queue_url, message):
                stop.wait(ERROR_BACKOFF_SECONDS)
                break  # the rest of the batch comes back after its visibility timeout


def handle_message(
    runtime: Runtime, s3: S3Settings, sqs: Any, queue_url: str, message: dict[str, Any]
) -> bool:
    """Record one message's objects, then delete it; False if it must be delivered again."""
    try:
        events = parse_document(message.get("Body", ""))
    except EventFormatError as exc:
        log.error("deleting SQS message %s: not an S3 event (%s)", message.get("MessageId"), exc)
        events = []
    else:
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
    try:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    except Exception:
        # Recorded already: the redelivery will be an unchanged resubmission.
        log.exception("deleting SQS message %s failed", message.get("MessageId"))
    return True
