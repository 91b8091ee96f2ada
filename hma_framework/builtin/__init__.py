"""Built-in plugins that need nothing heavy, registered like any other plugin (``hma_builtin``).

The URL content source, which fetches ``http`` and ``https`` locations within the limits of
``fetch.*`` settings and refuses addresses that are not public; and the webhook action
handler, which sends Standard Webhooks-signed requests under the same address rules.
"""

from __future__ import annotations

from collections.abc import Iterator

from hma_framework.builtin.url_source import make_url_source
from hma_framework.builtin.webhook import webhook_handler_record
from hma_framework.hookspecs import hookimpl
from hma_framework.types import ActionHandlerRecord, ContentSourceRecord


@hookimpl
def hma_content_sources() -> Iterator[ContentSourceRecord]:
    yield ContentSourceRecord(name="url", schemes=("http", "https"), factory=make_url_source)


@hookimpl
def hma_action_handlers() -> Iterator[ActionHandlerRecord]:
    yield webhook_handler_record()
