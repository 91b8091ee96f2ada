"""Pure logic of the actioner: labels, conditions, action planning, retry waits, signatures."""

from __future__ import annotations

import base64
import datetime as dt
import os
import random

import attrs
import pytest
from standardwebhooks.webhooks import Webhook

from hma_framework.actions.backoff import parse_retry_after, retry_wait
from hma_framework.actions.conditions import RuleError, conditions_json, parse_condition
from hma_framework.actions.handlers import blank_secrets
from hma_framework.actions.labels import MatchLabels, field_labels
from hma_framework.actions.rules import Rule, action_key, parse_rule, plan_actions
from hma_framework.actions.signing import secret_key, signed_headers
from hma_framework.actions.writeback import Opinion
from hma_framework.settings import ActionSettings
from hma_framework.types import MatchedSignal


def labels(
    match_pk: int = 1,
    bank: str = "known",
    bank_tags: tuple[str, ...] = ("csam",),
    member_tags: tuple[str, ...] = (),
    distance: int = 0,
    fields: tuple[str, ...] = (),
    exchange: str | None = None,
) -> MatchLabels:
    tags = frozenset(bank_tags) | frozenset(member_tags)
    return MatchLabels(
        match_pk=match_pk,
        signal=MatchedSignal("pdq", "a" * 64, distance, bank, match_pk, tuple(sorted(tags))),
        labels={
            "bank": frozenset({bank}),
            "bank_tag": frozenset(bank_tags),
            "member_tag": frozenset(member_tags),
            "tag": tags,
            "signal_type": frozenset({"pdq"}),
            "exchange": frozenset({exchange}) if exchange else frozenset(),
        },
        fields=field_labels(fields),
    )


def test_additional_fields_become_key_value_or_plain_labels() -> None:
    assert field_labels(["uploader:42", "urgent", "url:http://x", ":odd", "k:"]) == {
        ("uploader", "42"),
        ("urgent", None),
        ("url", "http://x"),
        (":odd", None),
        ("k", ""),
    }


@pytest.mark.parametrize(
    ("condition", "match", "holds"),
    [
        ({"label": "bank", "equals": "known"}, labels(), True),
        ({"label": "bank", "equals": "other"}, labels(), False),
        ({"label": "bank", "in": ["a", "known"]}, labels(), True),
        ({"label": "tag", "equals": "csam"}, labels(bank_tags=(), member_tags=("csam",)), True),
        ({"label": "member_tag", "equals": "csam"}, labels(), False),
        ({"label": "exchange"}, labels(), False),
        ({"label": "exchange"}, labels(exchange="fb_threatexchange"), True),
        ({"field": "uploader", "equals": "42"}, labels(fields=("uploader:42",)), True),
        ({"field": "uploader", "in": ["1", "2"]}, labels(fields=("uploader:42",)), False),
        ({"field": "uploader"}, labels(fields=("uploader:42",)), True),
        ({"field": "urgent"}, labels(fields=("urgent",)), True),
        ({"field": "bank", "equals": "known"}, labels(fields=("bank:other",)), False),
        ({"max_distance": 10}, labels(distance=10), True),
        ({"max_distance": 10}, labels(distance=11), False),
        ({"min_distance": 1, "max_distance": 5}, labels(distance=0), False),
    ],
)
def test_conditions(condition: dict[str, object], match: MatchLabels, holds: bool) -> None:
    assert parse_condition(condition, "c").holds(match) is holds


def test_submitted_fields_cannot_pass_for_bank_labels() -> None:
    rule = parse_rule(
        {"name": "r", "must_have": [{"label": "bank", "equals": "x"}], "action": {"handler": "h"}}
    )
    assert not rule.fires_for(labels(fields=("bank:x",)))


def test_rules_are_tested_per_match() -> None:
    near_in_a = labels(1, bank="a", distance=2)
    far_in_b = labels(2, bank="b", distance=30)
    rule = parse_rule(
        {
            "name": "close-in-b",
            "must_have": [{"label": "bank", "equals": "b"}, {"max_distance": 10}],
            "action": {"handler": "h"},
        }
    )
    # Content-level union of labels would wrongly fire: bank b (match 2) + distance 2 (match 1).
    assert not any(rule.fires_for(m) for m in (near_in_a, far_in_b))


def _rule(name: str, handler_pk: int = 1, **body: object) -> Rule:
    parsed = parse_rule({"name": name, "action": {"handler": "h"}, **body})
    return attrs.evolve(parsed, handler_pk=handler_pk)


def test_plan_merges_rules_that_ask_for_the_same_action() -> None:
    matches = [labels(1, bank="a"), labels(2, bank="b", bank_tags=("spam",))]
    planned = plan_actions(
        [
            _rule("by-tag", must_have=[{"label": "tag", "equals": "csam"}]),
            _rule("everything"),
            _rule("in-b", must_have=[{"label": "bank", "equals": "b"}]),
            _rule("other-params", action={"handler": "h", "params": {"q": 1}}),
            _rule("other-handler", handler_pk=2),
            _rule("blocked", must_not_have=[{"label": "signal_type", "equals": "pdq"}]),
            _rule("off", enabled=False),
        ],
        matches,
    )
    by_rules = {p.rules_fired: p for p in planned}
    assert set(by_rules) == {
        ("by-tag", "everything", "in-b"),
        ("other-params",),
        ("other-handler",),
    }
    merged = by_rules[("by-tag", "everything", "in-b")]
    assert [m.match_pk for m in merged.matches] == [1, 2]
    assert merged.key == action_key(1, {}, None)
    assert by_rules[("other-params",)].key != merged.key
    assert action_key(1, {}, Opinion.SEEN) != action_key(1, {}, None)
    assert len(action_key(2**40, {"x": "y" * 1000}, Opinion.FALSE_POSITIVE)) <= 128


def test_rule_body_round_trip_keeps_in() -> None:
    with pytest.raises(RuleError, match="name must be"):
        parse_rule({"action": {"handler": "h"}})
    parsed = parse_rule(
        {"name": "r", "must_have": [{"label": "tag", "in": ["a"]}], "action": {"handler": "h"}}
    )
    assert conditions_json(parsed.must_have) == [{"label": "tag", "in": ["a"]}]


def test_retry_waits_follow_the_schedule_with_jitter_and_retry_after() -> None:
    settings = ActionSettings(retry_intervals_seconds=(10, 100), retry_jitter_percent=20)
    rng = random.Random(1)
    waits = [retry_wait(settings, 1, rng=rng) for _ in range(200)]
    assert all(w is not None and 8 <= w <= 12 for w in waits) and len(set(waits)) > 100
    assert retry_wait(settings, 3) is None, "gives up after the schedule"
    exact = ActionSettings(retry_intervals_seconds=(10, 100), retry_jitter_percent=0)
    assert retry_wait(exact, 2) == 100
    assert retry_wait(exact, 1, retry_after=60) == 60, "Retry-After is a floor"
    assert retry_wait(exact, 2, retry_after=60) == 100
    assert retry_wait(exact, 1, retry_after=10**9) == exact.max_retry_after_seconds
    assert sum(ActionSettings().retry_intervals_seconds) / 3600 > 20, "about a day by default"


def test_parse_retry_after() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_signatures_verify_with_the_standardwebhooks_library() -> None:
    secrets = ["whsec_" + base64.b64encode(os.urandom(32)).decode() for _ in range(2)]
    body = b'{"hello": "world"}'
    now = int(dt.datetime.now(dt.UTC).timestamp())
    headers = signed_headers([secret_key(s) for s in secrets], "msg_1", now, body)
    for secret in secrets:
        assert Webhook(secret).verify(body, headers) == {"hello": "world"}
    stranger = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(stranger).verify(body, headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(secrets[0]).verify(body + b" ", headers)


def test_secrets_are_blanked_from_messages() -> None:
    message = "bad value whsec_abcdef in {'Authorization': 'Bearer t0ken'}"
    blanked = blank_secrets(message, ["whsec_abcdef"], {"Authorization": "Bearer t0ken"}, "ab")
    assert "abcdef" not in blanked and "t0ken" not in blanked and "[secret]" in blanked
