"""URL and text signal types from python-threatexchange, loaded through the pytx adapter.

ThreatExchange carries URL and text indicators besides hashes; with these loaded, fetched
``url``, ``url_md5`` and ``raw_text`` records land in banks and ``/lookup`` matches them. The
library accepts any non-empty string as a URL or a text signal; the subclasses here refuse
control characters (and whitespace inside a URL), so a malformed record is counted as such
instead of being banked. Names stay the library's (``url``, ``raw_text``).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

from threatexchange.signal_type.raw_text import RawTextSignal
from threatexchange.signal_type.url import URLSignal
from threatexchange.signal_type.url_md5 import UrlMD5Signal

from hma_framework.plugins import tx_extension_hooks

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL_REFUSED = re.compile(r"[\x00-\x20\x7f]")
_MD5 = re.compile(r"[0-9a-f]{32}")


class CheckedURLSignal(URLSignal):
    """``url``: a non-empty URL with no whitespace or control characters."""

    @classmethod
    def get_name(cls) -> str:
        return URLSignal.get_name()

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        value = super().validate_signal_str(signal_str)
        if _URL_REFUSED.search(value):
            raise ValueError("a URL may not contain whitespace or control characters")
        return value


class CheckedRawTextSignal(RawTextSignal):
    """``raw_text``: non-empty text without control characters (tabs and newlines allowed)."""

    @classmethod
    def get_name(cls) -> str:
        return RawTextSignal.get_name()

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        value = super().validate_signal_str(signal_str)
        if _CONTROL.search(value):
            raise ValueError("text may not contain control characters")
        return value


class CheckedUrlMD5Signal(UrlMD5Signal):
    """``url_md5``: exactly 32 hexadecimal digits."""

    @classmethod
    def get_name(cls) -> str:
        return UrlMD5Signal.get_name()

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        value = super().validate_signal_str(signal_str).lower()
        if not _MD5.fullmatch(value):
            raise ValueError("a url_md5 is 32 hexadecimal digits")
        return value


_MANIFEST = SimpleNamespace(
    signal_types=(CheckedURLSignal, CheckedUrlMD5Signal, CheckedRawTextSignal), apis=()
)

hma_signal_types, hma_exchanges = tx_extension_hooks(_MANIFEST)
