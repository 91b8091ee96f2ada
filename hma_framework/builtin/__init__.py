"""Built-in plugins that need nothing heavy, registered like any other plugin (``hma_builtin``).

Today: the URL content source, which fetches ``http`` and ``https`` locations within the
limits of ``fetch.*`` settings and refuses addresses that are not public.
"""

from __future__ import annotations

from collections.abc import Iterator

from hma_framework.builtin.url_source import make_url_source
from hma_framework.hookspecs import hookimpl
from hma_framework.types import ContentSourceRecord


@hookimpl
def hma_content_sources() -> Iterator[ContentSourceRecord]:
    yield ContentSourceRecord(name="url", schemes=("http", "https"), factory=make_url_source)
