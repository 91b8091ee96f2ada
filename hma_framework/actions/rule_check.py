"""Would this rule fire? A rule (saved or being written) tested against one recorded match.

The answer comes from the actioner's own code: the match is labelled by
:func:`labels.load_labeled_matches` and tested by :meth:`Rule.fires_for` and each
condition's ``holds``, so a rule author sees exactly what matching would decide, condition
by condition, with the labels the match carries.
"""

from __future__ import annotations

from typing import Any

import attrs
from sqlalchemy import select

from hma_framework.actions.conditions import conditions_json
from hma_framework.actions.errors import ActionNotFound
from hma_framework.actions.labels import load_labeled_matches
from hma_framework.actions.rules import Rule
from hma_framework.store.db import Store
from hma_framework.store.tables import MatchRow


@attrs.frozen
class ConditionResult:
    part: str  # must_have or must_not_have
    condition: dict[str, Any]
    holds: bool

    @property
    def as_wanted(self) -> bool:
        """Whether this condition lets the rule fire (holds, or does not for must_not_have)."""
        return self.holds if self.part == "must_have" else not self.holds


@attrs.frozen
class RuleCheck:
    match_pk: int
    content_id: str
    fires: bool
    conditions: tuple[ConditionResult, ...]
    labels: dict[str, object]
    enabled: bool


def check_rule(store: Store, rule: Rule, match_pk: int) -> RuleCheck:
    """Test ``rule`` on match ``match_pk`` as the actioner would; ActionNotFound if it cannot."""
    with store.reading() as session:
        found = session.execute(
            select(MatchRow.content_pk, MatchRow.superseded_at).where(MatchRow.id == match_pk)
        ).one_or_none()
    if found is None:
        raise ActionNotFound(f"no match {match_pk}")
    if found.superseded_at is not None:
        raise ActionNotFound(f"match {match_pk} was superseded by a resubmission; rules skip it")
    facts, labeled = load_labeled_matches(store, found.content_pk)
    match = next((m for m in labeled if m.match_pk == match_pk), None)
    if facts is None or match is None:
        raise ActionNotFound(f"match {match_pk} is gone")
    results = tuple(
        ConditionResult(part, shown, condition.holds(match))
        for part, conditions in (
            ("must_have", rule.must_have),
            ("must_not_have", rule.must_not_have),
        )
        for condition, shown in zip(conditions, conditions_json(conditions), strict=True)
    )
    return RuleCheck(
        match_pk=match_pk,
        content_id=facts.content_id,
        fires=rule.fires_for(match),
        conditions=results,
        labels=match.as_json(),
        enabled=rule.enabled,
    )
