"""The labels every match carries, which action rules test.

A match is labelled by where it was banked (bank name and tags, member tags, the exchange and
collaboration that filled the bank), what matched (signal type, distance) and by the
submission's ``additional_fields``. Submission fields are kept apart from the other labels:
whoever submits content chooses them, so a field ``bank:trusted`` must never pass for the
bank label ``trusted``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs
from sqlalchemy import select

from hma_framework.store.db import Store
from hma_framework.store.tables import BankMemberRow, BankRow, ContentRow, ExchangeRow, MatchRow
from hma_framework.types import MatchedSignal

#: Label names a rule can test with ``{"label": ...}``; ``tag`` is bank and member tags alike.
LABEL_NAMES = (
    "bank",
    "bank_tag",
    "member_tag",
    "tag",
    "signal_type",
    "exchange",
    "collaboration",
)

FieldLabel = tuple[str, str | None]


def field_labels(additional_fields: Iterable[str]) -> frozenset[FieldLabel]:
    """One label per entry: ``key:value`` is a key/value label, anything else a plain label."""
    labels: set[FieldLabel] = set()
    for entry in additional_fields:
        key, separator, value = entry.partition(":")
        labels.add((key, value) if separator and key else (entry, None))
    return frozenset(labels)


def _strings(values: Iterable[object]) -> frozenset[str]:
    return frozenset(str(value) for value in values)


@attrs.frozen
class MatchLabels:
    """What a rule sees of one match."""

    match_pk: int
    signal: MatchedSignal
    labels: Mapping[str, frozenset[str]]
    fields: frozenset[FieldLabel] = frozenset()
    exchange_pk: int | None = None

    @property
    def distance(self) -> int:
        return self.signal.distance

    def values(self, name: str) -> frozenset[str]:
        return self.labels.get(name, frozenset())

    def field_values(self, key: str) -> frozenset[str | None]:
        return frozenset(value for k, value in self.fields if k == key)

    def as_json(self) -> dict[str, object]:
        """The labels as the API shows them (for a rule author checking what a match has)."""
        return {
            **{name: sorted(values) for name, values in self.labels.items() if values},
            "distance": self.distance,
            "fields": sorted(k if v is None else f"{k}:{v}" for k, v in self.fields),
        }


@attrs.frozen
class ContentFacts:
    """The content a set of matches belongs to, as an action request describes it."""

    content_pk: int
    content_id: str
    content_type: str
    additional_fields: tuple[str, ...]


def load_labeled_matches(
    store: Store, content_pk: int
) -> tuple[ContentFacts | None, list[MatchLabels]]:
    """The content and each of its matches with labels, in two queries."""
    return load_many_labeled_matches(store, [content_pk]).get(content_pk, (None, []))


def load_many_labeled_matches(
    store: Store, content_pks: Sequence[int]
) -> dict[int, tuple[ContentFacts, list[MatchLabels]]]:
    """Each existing content of ``content_pks`` with its labelled matches, in two queries."""
    query = (
        select(
            MatchRow.content_pk,
            MatchRow.id,
            MatchRow.signal_type,
            MatchRow.content_signal,
            MatchRow.distance,
            MatchRow.member_pk,
            BankRow.name,
            BankRow.tags,
            BankMemberRow.tags,
            ExchangeRow.id,
            ExchangeRow.name,
            ExchangeRow.api_type,
        )
        .join(BankRow, BankRow.id == MatchRow.bank_pk)
        .join(BankMemberRow, BankMemberRow.id == MatchRow.member_pk)
        .outerjoin(ExchangeRow, ExchangeRow.id == BankRow.exchange_pk)
        .where(MatchRow.content_pk.in_(content_pks), MatchRow.superseded_at.is_(None))
        .order_by(MatchRow.id)
    )
    with store.reading() as session:
        contents = session.execute(
            select(
                ContentRow.id,
                ContentRow.content_id,
                ContentRow.content_type,
                ContentRow.additional_fields,
            ).where(ContentRow.id.in_(content_pks))
        ).all()
        rows = session.execute(query).all()
    found: dict[int, tuple[ContentFacts, list[MatchLabels]]] = {}
    fields: dict[int, frozenset[FieldLabel]] = {}
    for pk, content_id, content_type, additional_fields in contents:
        facts = ContentFacts(pk, content_id, content_type, tuple(str(f) for f in additional_fields))
        found[pk] = (facts, [])
        fields[pk] = field_labels(facts.additional_fields)
    for row in rows:
        content_pk, match_pk, signal_type, value, distance, member_pk = row[:6]
        bank, bank_tags, member_tags, exchange_pk, collaboration, api_type = row[6:]
        if content_pk not in found:  # deleted between the two queries
            continue
        bank_tag_set, member_tag_set = _strings(bank_tags), _strings(member_tags)
        labels = {
            "bank": frozenset({bank}),
            "bank_tag": bank_tag_set,
            "member_tag": member_tag_set,
            "tag": bank_tag_set | member_tag_set,
            "signal_type": frozenset({signal_type}),
            "exchange": frozenset({api_type}) if api_type else frozenset(),
            "collaboration": frozenset({collaboration}) if collaboration else frozenset(),
        }
        signal = MatchedSignal(
            signal_type=signal_type,
            signal_value=value,
            distance=distance,
            bank=bank,
            member_id=member_pk,
            tags=tuple(sorted(bank_tag_set | member_tag_set)),
        )
        found[content_pk][1].append(
            MatchLabels(match_pk, signal, labels, fields[content_pk], exchange_pk)
        )
    return found
