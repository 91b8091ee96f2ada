"""StopNCII, with withdrawn hashes removed and every call on the shared HTTP policy.

The library decides whether a record was withdrawn by comparing the *hash value* with the
case statuses (``record.hashValue in (Withdrawn, Deleted)``), which is never true, so hashes
whose cases were withdrawn or deleted stay live in every bank. Here the record's aggregate
``hashStatus`` decides. Its client's POSTs have no timeout or retry; here every request goes
through :class:`ExchangeSession`, and the base URL comes from the exchange's config.

The library also checkpoints every page at the response's ``nextSetTimestamp``, the start of
the *next set*: a fetch killed after the first page of a set resumed from there and never read
the rest of the set. Here a page with more to follow keeps the set's start time (the page token
does not outlive the fetch), so a resumed fetch reads the set again from its start.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.clients.stopncii import api
from threatexchange.exchanges.impl.stop_ncii_api import (
    StopNCIICheckpoint,
    StopNCIICredentials,
    StopNCIISignalExchangeAPI,
    StopNCIISignalMetadata,
    _type_mapping,
)
from threatexchange.signal_type.signal_base import SignalType

from hma_framework.types import ExchangeClientSpec
from hma_threatexchange.http import ExchangeSession, HttpPolicy

GONE = (api.StopNCIICaseStatus.Withdrawn, api.StopNCIICaseStatus.Deleted)
FEEDBACK = {
    "true_positive": api.StopNCIICSPFeedbackValue.Blocked,
    "false_positive": api.StopNCIICSPFeedbackValue.NotBlocked,
}


@dataclass
class StopNCIIFeedbackCredentials(StopNCIICredentials):
    """The library's keys plus the SubmitFeedback function key, which opinions need."""

    feedback_function_key: str | None = field(
        default=None,
        metadata={"help": "Optional. API key for the SubmitFeedback endpoint (write-back)."},
    )


class StopNCIIClient(api.StopNCIIAPI):
    """The library's client; its sessions carry the exchange HTTP policy."""

    def __init__(
        self, credentials: StopNCIIFeedbackCredentials, base_url: str | None, policy: HttpPolicy
    ) -> None:
        extra = {}
        if credentials.feedback_function_key:
            extra[api.StopNCIIEndpoint.SubmitFeedback] = credentials.feedback_function_key
        super().__init__(
            credentials.subscription_key,
            credentials.fetch_function_key,
            additional_function_keys=extra,
            base_url_override=(base_url or credentials.base_url_override or None),
        )
        self.policy = policy

    def _get_session(self, endpoint: api.StopNCIIEndpoint) -> ExchangeSession:
        headers = super()._get_session(endpoint).headers  # the library's keys for endpoint
        session = ExchangeSession(self.policy)
        session.headers.update(headers)
        return session


def delta_entry(record: api.StopNCIIHashRecord) -> tuple[tuple[str, str], Any]:
    """``((signal type, hash), metadata)``, or metadata None when the hash was withdrawn."""
    type_name = _type_mapping().get(record.signalType, "")
    if record.hashStatus in GONE:
        return (type_name, record.hashValue), None
    return (type_name, record.hashValue), StopNCIISignalMetadata(record.CSPFeedbacks)


def resume_point(result: api.FetchHashesResponse, start: int) -> StopNCIICheckpoint:
    """Where a fetch stopped after ``result`` picks up: the next set once this one is read."""
    if result.hasMoreRecords:
        return StopNCIICheckpoint(start, int(time.time()))
    return StopNCIICheckpoint.from_stopncii_fetch(result)


class StopNCIIExchange(StopNCIISignalExchangeAPI):
    """``stop_ncii`` with the withdrawal fix, timeouts and a configurable base URL."""

    @staticmethod
    def get_credential_cls() -> type[StopNCIIFeedbackCredentials]:
        return StopNCIIFeedbackCredentials

    @classmethod
    def from_spec(cls, spec: ExchangeClientSpec) -> StopNCIIExchange:
        credentials = StopNCIIFeedbackCredentials(**dict(spec.credentials))
        client = StopNCIIClient(credentials, spec.base_url, HttpPolicy.from_settings(spec.settings))
        return cls(spec.collab, client)

    def fetch_iter(
        self,
        _supported_signal_types: Sequence[type[SignalType]],
        checkpoint: StopNCIICheckpoint | None,
    ) -> Iterator[state.FetchDelta[Any, Any, Any]]:
        start = api.StopNCIIAPI.DEFAULT_START_TIME if checkpoint is None else checkpoint.update_time
        for result in self.api.fetch_hashes_iter(start_timestamp=start):
            entries = (delta_entry(r) for r in result.hashRecords)
            yield state.FetchDelta(
                {key: meta for key, meta in entries if key[0]}, resume_point(result, start)
            )

    def write_opinion(
        self, opinion: str, signal_type: str, signal_value: str, metadata: Mapping[str, Any]
    ) -> None:
        by_name = {name: kind for kind, name in _type_mapping().items()}
        self.api.submit_feedback(by_name[signal_type], signal_value, FEEDBACK[opinion])
