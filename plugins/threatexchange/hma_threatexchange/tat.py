"""Tech Against Terrorism's hash list, with a base URL per exchange and the shared HTTP policy.

The library's client reads its base URL from a class constant and retries only GETs on a
session it mounts for that constant's host (so a client pointed elsewhere would get no
timeout at all), and its ``for_collab`` drops the collaboration config. :class:`TATExchange`
keeps the config, takes a base URL from the exchange, and :class:`TATClient` sends every
request, the token POST included, through :class:`ExchangeSession`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threatexchange.exchanges.clients.techagainstterrorism import api
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.exchanges.impl.techagainstterrorism_api import (
    TATCredentials,
    TATSignalExchangeAPI,
)

from hma_framework.types import ExchangeClientSpec
from hma_threatexchange.http import ExchangeSession, HttpPolicy


class TATClient(api.TATHashListAPI):
    def __init__(
        self, username: str, password: str, *, base_url: str | None, policy: HttpPolicy
    ) -> None:
        super().__init__(username, password)
        if base_url:
            self.BASE_URL = base_url.rstrip("/") + "/"  # type: ignore[misc]
        self.policy = policy

    @contextmanager
    def _get_session(self, auth_token: str | None = None) -> Iterator[ExchangeSession]:
        session = ExchangeSession(self.policy)
        if auth_token:
            session.headers["Authorization"] = f"Bearer {auth_token}"
        try:
            yield session
        finally:
            session.close()


class TATExchange(TATSignalExchangeAPI):
    """``tat`` built from HMA's config: its collaboration, a base URL, timeouts."""

    base_url: str | None = None
    policy: HttpPolicy = HttpPolicy()
    collab: CollaborationConfigWithDefaults | None = None

    @classmethod
    def from_spec(cls, spec: ExchangeClientSpec) -> TATExchange:
        credentials = TATCredentials(**dict(spec.credentials))
        exchange = cls(credentials.username, credentials.password)
        exchange.collab = spec.collab
        exchange.base_url = spec.base_url
        exchange.policy = HttpPolicy.from_settings(spec.settings)
        return exchange

    def get_client(self) -> api.TATHashListAPI:
        return TATClient(self.username, self.password, base_url=self.base_url, policy=self.policy)
