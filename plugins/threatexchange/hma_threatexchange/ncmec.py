"""NCMEC's hash-sharing API, with time windows sent in UTC and the shared HTTP policy.

The library formats the ``from``/``to`` window with ``datetime.fromtimestamp`` (the host's
local time) and then labels it UTC with a ``Z``: on a host not running in UTC every window is
shifted by the offset, so updates are skipped or fetched twice. :class:`NCMECClient` formats
in UTC, sends every request through :class:`ExchangeSession`, and takes a base URL.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from typing import Any

from threatexchange.exchanges.clients.ncmec import hash_api as api
from threatexchange.exchanges.impl.ncmec_api import (
    NCMECCollabConfig,
    NCMECCredentials,
    NCMECSignalExchangeAPI,
)
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.signal_base import SignalType

from hma_framework.types import ExchangeClientSpec
from hma_threatexchange.http import ExchangeSession, HttpPolicy

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

#: Opinions NCMEC takes, as feedback votes on the entry's fingerprint.
FEEDBACK = {"true_positive": api.FeedbackType.upvote, "false_positive": api.FeedbackType.downvote}
#: HMA signal type -> the fingerprint NCMEC takes feedback on.
FINGERPRINTS = {"pdq": api.FingerprintType.pdq, "video_md5": api.FingerprintType.md5}


class NCMECFeedbackError(RuntimeError):
    """The opinion cannot be sent as NCMEC feedback (no entry, or no single reason)."""


def utc_timestamp(timestamp: int) -> str:
    """``timestamp`` as NCMEC reads it: ISO 8601 in UTC."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime(UTC_FORMAT)


class NCMECClient(api.NCMECHashAPI):
    def __init__(
        self,
        username: str,
        password: str,
        environment: api.NCMECEnvironment,
        *,
        base_url: str | None,
        policy: HttpPolicy,
    ) -> None:
        super().__init__(username, password, environment)
        if base_url:
            self._base_url = base_url.rstrip("/")
        self.policy = policy

    def _get_session(self) -> ExchangeSession:
        session = ExchangeSession(self.policy)
        session.auth = (self.username, self.password)
        return session

    def get_entries(
        self, *, start_timestamp: int = 0, end_timestamp: int = 0, next_: str = ""
    ) -> api.GetEntriesResponse:
        end_timestamp = end_timestamp or int(time.time())
        window: dict[str, Any] = {
            "from": utc_timestamp(start_timestamp),
            "to": utc_timestamp(end_timestamp),
        }
        response = self._get(api.NCMECEndpoint.entries, next_=next_, **window)
        return api.GetEntriesResponse.from_xml(api._XMLWrapper(response), int(time.time()))


class NCMECExchange(NCMECSignalExchangeAPI):
    """``ncmec`` built from HMA's config: UTC windows, timeouts, base URL."""

    base_url: str | None = None
    policy: HttpPolicy = HttpPolicy()

    @classmethod
    def from_spec(cls, spec: ExchangeClientSpec) -> NCMECExchange:
        credentials = NCMECCredentials(**dict(spec.credentials))
        exchange = cls(spec.collab, credentials.user, credentials.password)
        exchange.base_url = spec.base_url
        exchange.policy = HttpPolicy.from_settings(spec.settings)
        return exchange

    @classmethod
    def for_collab(
        cls, collab: NCMECCollabConfig, credentials: NCMECCredentials | None = None
    ) -> NCMECExchange:
        from hma_framework.settings import Settings

        credentials = credentials or NCMECCredentials.get(cls)
        spec = ExchangeClientSpec(
            collab, {"user": credentials.user, "password": credentials.password}, Settings()
        )
        return cls.from_spec(spec)

    @classmethod
    def naive_convert_to_signal_type(
        cls,
        signal_types: Sequence[type[SignalType]],
        collab: NCMECCollabConfig,
        fetched: Mapping[str, api.NCMECEntryUpdate],
    ) -> dict[type[SignalType], dict[str, Any]]:
        """The library maps fingerprints by exact class (``PdqSignal in signal_types``);
        installed signal types that subclass pytx's (HMA's PDQ) are offered as their base."""
        bases = [
            base
            for base in (PdqSignal, VideoMD5Signal)
            if base not in signal_types and any(issubclass(st, base) for st in signal_types)
        ]
        return super().naive_convert_to_signal_type([*signal_types, *bases], collab, fetched)

    def write_opinion(
        self, opinion: str, signal_type: str, signal_value: str, metadata: Mapping[str, Any]
    ) -> None:
        """An upvote or downvote on the entry's fingerprint of this signal type.

        A downvote needs a reason: the library takes the only one NCMEC offers for the
        fingerprint type and refuses to guess among several, and so do we.
        """
        fingerprint = FINGERPRINTS.get(signal_type)
        if fingerprint is None or "id" not in metadata or "member_id" not in metadata:
            raise NCMECFeedbackError(
                f"no NCMEC entry fingerprint to give feedback on ({signal_type})"
            )
        client = self.get_client(self.collab.environment)
        client.submit_feedback(
            int(metadata["member_id"]), str(metadata["id"]), fingerprint, FEEDBACK[opinion]
        )

    def get_client(self, environment: api.NCMECEnvironment) -> api.NCMECHashAPI:
        return NCMECClient(
            self._username,
            self._password,
            environment,
            base_url=self.base_url,
            policy=self.policy,
        )
