"""Facebook ThreatExchange, with the library's client made safe to run unattended.

python-threatexchange's ``ThreatExchangeAPI.get_json_from_url`` calls ``requests.get`` with
no timeout (a hung Graph API hangs the fetch worker forever), and
``FBThreatExchangeSignalExchangeAPI.for_collab`` cannot point the client at another base URL.
:class:`ThreatExchangeClient` sends every call through an :class:`ExchangeSession`;
:class:`ThreatExchangeExchange` builds it from the exchange's config and writes opinions as
descriptor reactions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from threatexchange.exchanges.clients.fb_threatexchange.api import ThreatExchangeAPI
from threatexchange.exchanges.impl.fb_threatexchange_api import (
    FBThreatExchangeCollabConfig,
    FBThreatExchangeCredentials,
    FBThreatExchangeSignalExchangeAPI,
)

from hma_framework.types import ExchangeClientSpec
from hma_threatexchange.http import ExchangeSession, HttpPolicy

log = logging.getLogger(__name__)

#: What each HMA opinion becomes on ThreatExchange: reactions added and removed.
REACTIONS: Mapping[str, tuple[str, str]] = {
    "seen": ("SAW_THIS_TOO", ""),
    "true_positive": ("HELPFUL", "DISAGREE_WITH_TAGS"),
    "false_positive": ("DISAGREE_WITH_TAGS", "HELPFUL"),
    "remove": ("", "HELPFUL,DISAGREE_WITH_TAGS,SAW_THIS_TOO"),
}


class ExchangeRequestError(RuntimeError):
    """The exchange answered a write with an error; the message carries no credential."""


class ThreatExchangeClient(ThreatExchangeAPI):
    """The library's client with one session: a timeout and retries on every request."""

    def __init__(self, api_token: str, *, endpoint: str | None, policy: HttpPolicy) -> None:
        super().__init__(api_token, endpoint_override=endpoint.rstrip("/") if endpoint else None)
        self.session = ExchangeSession(policy)

    def get_json_from_url(
        self, url: str, params: Mapping[str, Any] | None = None, *, json_obj_hook: Any = None
    ) -> Any:
        response = self.session.get(url, params=dict(params or {}))
        if response.status_code >= 400:
            # requests' own message quotes the URL, which carries the access token.
            raise ExchangeRequestError(f"ThreatExchange answered {response.status_code}")
        return response.json(object_hook=json_obj_hook)

    def _get_session(self) -> ExchangeSession:
        return _Borrowed(self.session)

    def react(self, descriptor_id: int, add: str, remove: str) -> None:
        """Add and/or remove reactions on one descriptor (the Graph API's POST)."""
        data = {}
        if add:
            data["reactions"] = add
        if remove:
            data["reactions_to_remove"] = remove
        response = self.session.post(
            f"{self._base_url}/{descriptor_id}",
            params={"access_token": self.api_token},
            data=data,
        )
        if response.status_code >= 400:
            raise ExchangeRequestError(
                f"ThreatExchange answered {response.status_code} to a reaction on descriptor "
                f"{descriptor_id}"
            )


class _Borrowed(ExchangeSession):
    """The client's session, lent to library code that closes what ``_get_session`` gives."""

    def __init__(self, session: ExchangeSession) -> None:
        self.__dict__ = session.__dict__

    def close(self) -> None:
        pass


class ThreatExchangeExchange(FBThreatExchangeSignalExchangeAPI):
    """``fb_threatexchange`` built from HMA's config: base URL, timeouts, opinions."""

    client: ThreatExchangeClient

    @classmethod
    def from_spec(cls, spec: ExchangeClientSpec) -> ThreatExchangeExchange:
        credentials = FBThreatExchangeCredentials(**dict(spec.credentials))
        client = ThreatExchangeClient(
            credentials.api_token,
            endpoint=spec.base_url,
            policy=HttpPolicy.from_settings(spec.settings),
        )
        return cls(client, spec.collab)

    @classmethod
    def for_collab(
        cls,
        collab: FBThreatExchangeCollabConfig,
        credentials: FBThreatExchangeCredentials | None = None,
    ) -> ThreatExchangeExchange:
        """The library's constructor, with a timeout on every call (default settings)."""
        from hma_framework.settings import Settings

        credentials = credentials or FBThreatExchangeCredentials.get(cls)
        spec = ExchangeClientSpec(collab, {"api_token": credentials.api_token}, Settings())
        return cls.from_spec(spec)

    def write_opinion(
        self, opinion: str, signal_type: str, signal_value: str, metadata: Mapping[str, Any]
    ) -> None:
        """React on every descriptor the fetch saw for this indicator (ours and others')."""
        add, remove = REACTIONS[opinion]
        descriptors = sorted(
            {
                int(o["descriptor_id"])
                for o in metadata.get("opinions", [])
                if o.get("descriptor_id") not in (None, -1)
            }
        )
        if not descriptors:
            raise ExchangeRequestError("the fetched record names no descriptor to react to")
        for descriptor_id in descriptors:
            self.client.react(descriptor_id, add, remove)
