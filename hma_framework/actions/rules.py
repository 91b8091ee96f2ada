"""Action rules: conditions over match labels, and the actions they call for.

A rule fires for content when at least one of its matches has every ``must_have`` condition
and none of the ``must_not_have`` ones (see :mod:`conditions`); the action then carries the
matches that fired it. Rules are tested per match, so a distance bound or a bank condition
talks about one match, never about two different ones at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from hma_framework.actions.conditions import Condition, RuleError, parse_conditions
from hma_framework.actions.labels import MatchLabels
from hma_framework.actions.writeback import Opinion

RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_PARAMS_BYTES = 16 * 1024


@attrs.frozen
class Rule:
    """A validated rule; ``handler_pk`` is known once the rule is read from the store."""

    name: str
    handler: str
    enabled: bool = True
    must_have: tuple[Condition, ...] = ()
    must_not_have: tuple[Condition, ...] = ()
    params: Mapping[str, Any] = attrs.field(factory=dict)
    write_back: Opinion | None = None
    handler_pk: int | None = None

    def fires_for(self, match: MatchLabels) -> bool:
        return all(c.holds(match) for c in self.must_have) and not any(
            c.holds(match) for c in self.must_not_have
        )

    def action_json(self) -> dict[str, Any]:
        action: dict[str, Any] = {"handler": self.handler, "params": dict(self.params)}
        if self.write_back is not None:
            action["write_back"] = self.write_back.value
        return action


def parse_rule(body: Mapping[str, Any], name: str | None = None) -> Rule:
    """A rule from its API form; the handler name is checked by the store, not here."""
    name = body.get("name", name)
    if not isinstance(name, str) or not RULE_NAME.match(name):
        raise RuleError("name must be 1-128 letters, digits, '_', '.' or '-'")
    known = {"name", "enabled", "must_have", "must_not_have", "action"}
    if unknown := sorted(set(body) - known):
        raise RuleError(f"unknown field(s) {', '.join(unknown)}")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError("enabled must be true or false")
    action = body.get("action")
    if not isinstance(action, dict):
        raise RuleError('action must be an object: {"handler": <name>, "params": {...}}')
    if unknown := sorted(set(action) - {"handler", "params", "write_back"}):
        raise RuleError(f"action: unknown field(s) {', '.join(unknown)}")
    handler = action.get("handler")
    if not isinstance(handler, str) or not handler:
        raise RuleError("action.handler must name a configured handler")
    params = action.get("params")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise RuleError("action.params must be an object")
    if len(json.dumps(params)) > MAX_PARAMS_BYTES:
        raise RuleError(f"action.params is larger than {MAX_PARAMS_BYTES} bytes")
    write_back = action.get("write_back")
    if write_back is not None and write_back not in Opinion.values():
        raise RuleError(f"action.write_back must be one of {', '.join(Opinion.values())}")
    return Rule(
        name=name,
        handler=handler,
        enabled=enabled,
        must_have=parse_conditions(body.get("must_have"), "must_have"),
        must_not_have=parse_conditions(body.get("must_not_have"), "must_not_have"),
        params=params,
        write_back=Opinion(write_back) if write_back is not None else None,
    )


# --- which actions the rules call for ------------------------------------------------------------


def action_key(handler_pk: int, params: Mapping[str, Any], write_back: Opinion | None) -> str:
    """Two rules asking the same handler for the same thing are one action, done once."""
    what = json.dumps(
        {"params": params, "write_back": write_back.value if write_back else None},
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"{handler_pk}:{hashlib.sha256(what.encode()).hexdigest()[:32]}"


@attrs.frozen
class PlannedAction:
    """One action for one content item: which rules asked for it, on which matches."""

    key: str
    handler_pk: int
    params: Mapping[str, Any]
    write_back: Opinion | None
    rules_fired: tuple[str, ...]
    matches: tuple[MatchLabels, ...]


def plan_actions(rules: Sequence[Rule], matches: Sequence[MatchLabels]) -> list[PlannedAction]:
    """The actions enabled rules call for, each once, with every rule and match behind it."""
    rules_by_key: dict[str, list[Rule]] = {}
    matches_by_key: dict[str, dict[int, MatchLabels]] = {}
    for rule in rules:
        if not rule.enabled or rule.handler_pk is None:
            continue
        fired = [m for m in matches if rule.fires_for(m)]
        if not fired:
            continue
        key = action_key(rule.handler_pk, rule.params, rule.write_back)
        rules_by_key.setdefault(key, []).append(rule)
        matches_by_key.setdefault(key, {}).update((m.match_pk, m) for m in fired)
    planned = []
    for key, asking in rules_by_key.items():
        first = asking[0]
        assert first.handler_pk is not None
        planned.append(
            PlannedAction(
                key=key,
                handler_pk=first.handler_pk,
                params=first.params,
                write_back=first.write_back,
                rules_fired=tuple(sorted(r.name for r in asking)),
                matches=tuple(sorted(matches_by_key[key].values(), key=lambda m: m.match_pk)),
            )
        )
    return planned
