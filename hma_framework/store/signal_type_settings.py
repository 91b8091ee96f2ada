"""HMA 2.0's per-signal-type ``enabled_ratio``, kept so ``/c/signal_type`` reads back what
was set. As in HMA 2.0 (whose types count as enabled for any ratio from 0 to 1), the ratio
does not change hashing or matching; bank ratios and kill switches do that.
"""

from __future__ import annotations

from sqlalchemy import select

from hma_framework.store.db import Store
from hma_framework.store.tables import SignalTypeSettingRow

DEFAULT_RATIO = 1.0


def enabled_ratios(store: Store) -> dict[str, float]:
    """Every stored ratio; a type missing here has :data:`DEFAULT_RATIO`."""
    with store.reading() as session:
        rows = session.execute(
            select(SignalTypeSettingRow.signal_type, SignalTypeSettingRow.enabled_ratio)
        ).all()
    return {name: float(ratio) for name, ratio in rows}


def set_enabled_ratio(store: Store, signal_type: str, ratio: float) -> None:
    with store.transaction() as session:
        row = session.get(SignalTypeSettingRow, signal_type)
        if row is None:
            session.add(SignalTypeSettingRow(signal_type=signal_type, enabled_ratio=ratio))
        else:
            row.enabled_ratio = ratio
