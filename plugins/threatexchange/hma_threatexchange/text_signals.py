"""URL and text signal types from python-threatexchange, loaded through the pytx adapter.

ThreatExchange carries URL and text indicators besides hashes; with these loaded, fetched
``url``, ``url_md5`` and ``raw_text`` records land in banks and ``/lookup`` matches them.
"""

from __future__ import annotations

from types import SimpleNamespace

from threatexchange.signal_type.raw_text import RawTextSignal
from threatexchange.signal_type.url import URLSignal
from threatexchange.signal_type.url_md5 import UrlMD5Signal

from hma_framework.plugins import tx_extension_hooks

_MANIFEST = SimpleNamespace(signal_types=(URLSignal, UrlMD5Signal, RawTextSignal), apis=())

hma_signal_types, hma_exchanges = tx_extension_hooks(_MANIFEST)
