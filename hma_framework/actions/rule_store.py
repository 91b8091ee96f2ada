"""Stored action rules (``action_rule``): create, read, replace, delete, and load for matching."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hma_framework.actions.conditions import RuleError, conditions_json, parse_conditions
from hma_framework.actions.errors import ActionConflict, ActionNotFound
from hma_framework.actions.rules import Rule
from hma_framework.actions.writeback import Opinion
from hma_framework.store.db import Store
from hma_framework.store.tables import ActionRuleRow, HandlerConfigRow


def _handler_pk(session: Session, name: str) -> int:
    pk = session.scalar(select(HandlerConfigRow.id).where(HandlerConfigRow.name == name))
    if pk is None:
        known = session.scalars(select(HandlerConfigRow.name).order_by(HandlerConfigRow.name))
        listing = ", ".join(known) or "none yet: create one with POST /handlers"
        raise RuleError(f"action.handler: no configured handler named {name!r}; have: {listing}")
    return int(pk)


def _rule(row: ActionRuleRow, handler: str) -> Rule:
    return Rule(
        name=row.name,
        handler=handler,
        enabled=row.enabled,
        must_have=parse_conditions(row.must_have, "must_have"),
        must_not_have=parse_conditions(row.must_not_have, "must_not_have"),
        params=dict(row.params),
        write_back=Opinion(row.write_back) if row.write_back else None,
        handler_pk=row.handler_pk,
    )


def _view(row: ActionRuleRow, handler: str) -> dict[str, Any]:
    return {
        "name": row.name,
        "enabled": row.enabled,
        "must_have": list(row.must_have),
        "must_not_have": list(row.must_not_have),
        "action": _rule(row, handler).action_json(),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _apply(row: ActionRuleRow, rule: Rule, handler_pk: int) -> None:
    row.name = rule.name
    row.enabled = rule.enabled
    row.must_have = conditions_json(rule.must_have)
    row.must_not_have = conditions_json(rule.must_not_have)
    row.handler_pk = handler_pk
    row.params = dict(rule.params)
    row.write_back = rule.write_back.value if rule.write_back else None


class RuleStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _query(self) -> Any:
        return select(ActionRuleRow, HandlerConfigRow.name).join(
            HandlerConfigRow, HandlerConfigRow.id == ActionRuleRow.handler_pk
        )

    def all(self) -> list[dict[str, Any]]:
        with self._store.reading() as session:
            rows = session.execute(self._query().order_by(ActionRuleRow.name)).all()
            return [_view(row, handler) for row, handler in rows]

    def get(self, name: str) -> dict[str, Any]:
        with self._store.reading() as session:
            found = session.execute(self._query().where(ActionRuleRow.name == name)).one_or_none()
            if found is None:
                raise ActionNotFound(f"no rule named {name!r}")
            return _view(found[0], found[1])

    def create(self, rule: Rule) -> dict[str, Any]:
        try:
            with self._store.transaction() as session:
                row = ActionRuleRow()
                _apply(row, rule, _handler_pk(session, rule.handler))
                session.add(row)
                session.flush()
                return _view(row, rule.handler)
        except IntegrityError as exc:
            raise ActionConflict(f"a rule named {rule.name!r} already exists") from exc

    def replace(self, name: str, rule: Rule) -> dict[str, Any]:
        """Replace rule ``name`` with ``rule`` (which may rename it)."""
        try:
            with self._store.transaction() as session:
                row = session.scalars(
                    select(ActionRuleRow).where(ActionRuleRow.name == name)
                ).one_or_none()
                if row is None:
                    raise ActionNotFound(f"no rule named {name!r}")
                _apply(row, rule, _handler_pk(session, rule.handler))
                session.flush()
                return _view(row, rule.handler)
        except IntegrityError as exc:
            raise ActionConflict(f"a rule named {rule.name!r} already exists") from exc

    def delete(self, name: str) -> None:
        with self._store.transaction() as session:
            row = session.scalars(
                select(ActionRuleRow).where(ActionRuleRow.name == name)
            ).one_or_none()
            if row is None:
                raise ActionNotFound(f"no rule named {name!r}")
            session.delete(row)

    def enabled_rules(self) -> list[Rule]:
        """The rules matching should evaluate, with their handlers' ids."""
        with self._store.reading() as session:
            rows = session.execute(
                self._query().where(ActionRuleRow.enabled.is_(True)).order_by(ActionRuleRow.name)
            ).all()
            return [_rule(row, handler) for row, handler in rows]
