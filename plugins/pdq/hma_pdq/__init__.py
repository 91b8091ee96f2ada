"""PDQ for photos: the hma_pdq plugin."""

from __future__ import annotations

from collections.abc import Iterator

from threatexchange.signal_type.pdq.signal import PdqSignal

from hma_framework.hookspecs import hookimpl
from hma_framework.types import SignalTypeRecord


@hookimpl
def hma_signal_types() -> Iterator[SignalTypeRecord]:
    yield SignalTypeRecord(PdqSignal, content_types=("photo",), default_threshold=31)
