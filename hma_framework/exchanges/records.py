"""Turning what an exchange API yields into bank members.

The core knows no exchange by name: records are keyed by whatever the API keys them by
(``(type, value)`` for most, an id for NCMEC), converted to signals by the API's own
``naive_convert_to_signal_type`` and validated by the signal type. Unknown signal types are
counted and logged once per type per fetch; signals that fail validation are counted as
malformed.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPIWithSimpleUpdates
from threatexchange.signal_type.signal_base import SignalType

from hma_framework.store.banks import NewMember

log = logging.getLogger(__name__)

_MAX_EXTERNAL_ID = 255


def external_id(key: Any) -> str:
    """A stable member ``external_id`` for an API's record key (hashed when too long)."""
    text = ":".join(str(part) for part in key) if isinstance(key, tuple) else str(key)
    if len(text) > _MAX_EXTERNAL_ID:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON: enums by name, sets sorted, dataclasses as objects.

    This runs for every field of every fetched record, so each type's conversion is worked
    out once and kept in ``_CONVERTERS``, and a value costs one dict lookup and a call.
    """
    kind = type(value)
    convert = _CONVERTERS.get(kind)
    if convert is None:
        convert = _CONVERTERS[kind] = _converter_for(kind)
    return convert(value)


def _same(value: Any) -> Any:
    return value


def _items(value: Any) -> list[Any]:
    return [json_safe(v) for v in value]


def _sorted(value: Any) -> list[Any]:
    return sorted([json_safe(v) for v in value])


def _object(value: Any) -> dict[str, Any]:
    return {str(k): json_safe(v) for k, v in value.items()}


def _enum_name(value: enum.Enum) -> str:
    return value.name.lower()


def _converter_for(kind: type) -> Any:
    if issubclass(kind, enum.Enum):
        return _enum_name
    if dataclasses.is_dataclass(kind):
        names = tuple(f.name for f in dataclasses.fields(kind))
        return lambda value: {name: json_safe(getattr(value, name)) for name in names}
    if issubclass(kind, str | int | float):
        return _same
    return str


_CONVERTERS: dict[type, Any] = {
    str: _same,
    int: _same,
    bool: _same,
    float: _same,
    type(None): _same,
    list: _items,
    tuple: _items,
    set: _sorted,
    frozenset: _sorted,
    dict: _object,
}


def metadata_json(value: Any) -> dict[str, Any]:
    converted = json_safe(value)
    return converted if isinstance(converted, dict) else {"value": converted}


def _tags(value: Any) -> tuple[str, ...]:
    try:
        opinions = value.get_as_opinions()
    except Exception:  # an API whose metadata has no opinions
        return ()
    return tuple(sorted({str(tag) for opinion in opinions for tag in opinion.tags}))


@attrs.define
class RecordConverter:
    """Converts one API's records for one exchange; counts what it skipped."""

    exchange: str
    api: type[Any]
    collab: Any
    signal_types: Sequence[type[SignalType]]
    skipped: int = 0
    _by_name: dict[str, type[SignalType]] = attrs.field(factory=dict)
    _simple: bool = False
    _logged: set[str] = attrs.field(factory=set)
    _converted_tags: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        self._by_name = {st.get_name(): st for st in self.signal_types}
        own = self.api.naive_convert_to_signal_type.__func__
        simple = SignalExchangeAPIWithSimpleUpdates.naive_convert_to_signal_type.__func__  # type: ignore[attr-defined]
        self._simple = own is simple

    def _unknown(self, type_label: str) -> None:
        self.skipped += 1
        if type_label not in self._logged:  # one line per type per fetch, not per record
            self._logged.add(type_label)
            log.warning(
                "exchange %s: skipping records of signal type %r, which this instance does "
                "not know (logged once)",
                self.exchange,
                type_label,
            )

    def _malformed(self) -> None:
        self.skipped += 1

    def _signals(
        self, key: Any, value: Any, known: dict[int, list[tuple[str, str]]] | None = None
    ) -> list[tuple[str, str]] | None:
        if self._simple and isinstance(key, tuple) and len(key) == 2:
            s_type = self._by_name.get(str(key[0]))
            if s_type is None:
                self._unknown(str(key[0]))
                return None
            return [(s_type.get_name(), str(key[1]).strip())]
        if known is not None and id(value) in known:
            return known[id(value)]
        converted = self.api.naive_convert_to_signal_type(
            self.signal_types, self.collab, {key: value}
        )
        if not converted:
            label = str(key[0]) if isinstance(key, tuple) else f"{self.api.get_name()} record"
            self._unknown(label)
            return None
        # The API's own metadata for the signal carries its opinions' tags (NCMEC turns an
        # entry's classification into one) when the fetched record itself has none.
        self._converted_tags = tuple(
            sorted(
                {t for found in converted.values() for meta in found.values() for t in _tags(meta)}
            )
        )
        return [(st.get_name(), s) for st, found in converted.items() for s in found]

    def _convert_all(self, updates: Mapping[Any, Any]) -> dict[int, list[tuple[str, str]]]:
        """One library conversion for a whole delta, keyed back by record identity.

        The API's converter returns ``{signal type: {signal: record}}``; records it merged
        or rebuilt are not found by identity and fall back to a conversion of their own.
        """
        if self._simple:
            return {}
        live = {k: v for k, v in updates.items() if v is not None}
        converted = self.api.naive_convert_to_signal_type(self.signal_types, self.collab, live)
        found: dict[int, list[tuple[str, str]]] = {}
        for s_type, signals in converted.items():
            for signal, record in signals.items():
                found.setdefault(id(record), []).append((s_type.get_name(), signal))
        return found

    def member(
        self, key: Any, value: Any, known: dict[int, list[tuple[str, str]]] | None = None
    ) -> NewMember | None:
        """The member for one record, or None when it is skipped (counted)."""
        self._converted_tags = ()
        signals = self._signals(key, value, known)
        if signals is None:
            return None
        valid = []
        for type_name, signal in signals:
            try:
                valid.append((type_name, self._by_name[type_name].validate_signal_str(signal)))
            except Exception:
                continue
        if not valid:
            self._malformed()
            return None
        return NewMember(
            signals=tuple(sorted(set(valid))),
            external_id=external_id(key),
            tags=_tags(value) or self._converted_tags,
            exchange_metadata=metadata_json(value),
        )

    def batch(self, updates: Mapping[Any, Any]) -> dict[str, NewMember | None]:
        """``external_id -> member or None (delete)``; skipped records are not included."""
        converted: dict[str, NewMember | None] = {}
        # The API's own merge says what a record means: NCMEC sends deleted entries as
        # tombstone records, which it merges to None (a removal).
        merge = self.api.fetch_value_merge
        updates = {k: None if v is None else merge(None, v) for k, v in updates.items()}
        known = self._convert_all(updates)
        for key, value in updates.items():
            if value is None:
                converted[external_id(key)] = None
                continue
            member = self.member(key, value, known)
            if member is not None:
                converted[member.external_id or external_id(key)] = member
        return converted
