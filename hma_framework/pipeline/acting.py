"""The action step: where matched content meets action rules and handlers.

``act_content`` calls :func:`evaluate_actions` once per matched content and then records
``actioned_at``. Evaluation labels the content's matches, asks the enabled rules which actions
they call for, records one delivery per content and action (two rules or two matches asking
for the same action make one delivery that names every rule), and hands each new delivery to
a job on the ``action`` queue. Handlers never run here: a slow webhook holds up its own
delivery, not the pipeline.
"""

from __future__ import annotations

import logging

from hma_framework.actions.deliveries import create_deliveries
from hma_framework.actions.delivering import enqueue_attempt
from hma_framework.actions.labels import load_labeled_matches
from hma_framework.actions.rule_store import RuleStore
from hma_framework.actions.rules import plan_actions
from hma_framework.runtime import Runtime

log = logging.getLogger(__name__)


def evaluate_actions(runtime: Runtime, content_pk: int) -> list[str]:
    """Evaluate action rules for matched content; returns the names of the rules that fired.

    Idempotent: run again (a retried job, a retroactive match), it records no action twice.
    """
    rules = RuleStore(runtime.store).enabled_rules()
    if not rules:
        log.debug("content %d: no action rules are enabled", content_pk)
        return []
    facts, matches = load_labeled_matches(runtime.store, content_pk)
    if facts is None or not matches:
        return []
    planned = plan_actions(rules, matches)
    for delivery_pk, job_id in create_deliveries(runtime.store, facts, planned):
        enqueue_attempt(runtime, delivery_pk, job_id)
    return sorted({name for action in planned for name in action.rules_fired})
