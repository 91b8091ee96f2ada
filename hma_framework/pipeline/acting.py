"""The action step: where matched content meets action rules and handlers.

The act stage evaluates many matched contents at once (:func:`act_many`): their matches are
labelled in two queries, the enabled rules say which actions they call for, and one
transaction records a delivery per content and action (two rules or two matches asking for
the same action make one delivery that names every rule) together with each content's
``actioned_at``. New deliveries then go to deliver jobs on the ``action`` queue, a batch of
one handler's deliveries per job. Handlers never run here: a slow webhook holds up its own
deliveries, not the pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import attrs
from sqlalchemy import select, update

from hma_framework import metrics
from hma_framework.actions.deliveries import Plan, create_deliveries
from hma_framework.actions.delivering import enqueue_created
from hma_framework.actions.labels import load_many_labeled_matches
from hma_framework.actions.rule_store import RuleStore
from hma_framework.actions.rules import plan_actions
from hma_framework.runtime import Runtime
from hma_framework.store import content as records
from hma_framework.store.tables import ContentRow, utcnow

log = logging.getLogger(__name__)


def _plans(runtime: Runtime, content_pks: Sequence[int]) -> list[Plan]:
    """What the enabled rules call for, per content (contents without matches plan nothing)."""
    rules = RuleStore(runtime.store).enabled_rules()
    if not rules:
        log.debug("no action rules are enabled")
        return []
    found = load_many_labeled_matches(runtime.store, content_pks)
    return [
        (facts, plan_actions(rules, matches))
        for facts, matches in (found[pk] for pk in content_pks if pk in found)
        if matches
    ]


def evaluate_actions(runtime: Runtime, content_pk: int) -> list[str]:
    """Evaluate action rules for matched content; returns the names of the rules that fired.

    Idempotent: run again (a retried job, a retroactive match), it records no action twice.
    """
    plans = _plans(runtime, [content_pk])
    with runtime.store.transaction() as session:
        created = create_deliveries(session, plans)
    enqueue_created(runtime, created)
    return sorted({name for _, planned in plans for a in planned for name in a.rules_fired})


@attrs.frozen
class Acted:
    """What one act batch did."""

    actioned: int
    skipped: int
    deliveries: int


def act_many(runtime: Runtime, content_pks: Sequence[int]) -> Acted:
    """The act stage for every content of ``content_pks`` still awaiting it, at once.

    Contents no longer matched (acted on already, resubmitted meanwhile) are skipped, so a
    retried or duplicated batch records nothing twice.
    """
    with runtime.store.reading() as session:
        waiting = dict(
            session.execute(
                select(ContentRow.id, ContentRow.submitted_at).where(
                    ContentRow.id.in_(content_pks), ContentRow.status == records.MATCHED
                )
            ).all()
        )
    pks = sorted(waiting)
    plans = _plans(runtime, pks) if pks else []
    with runtime.store.transaction() as session:
        created = create_deliveries(session, plans)
        if pks:
            session.execute(
                update(ContentRow)
                .where(ContentRow.id.in_(pks), ContentRow.status == records.MATCHED)
                .values(status=records.ACTIONED, actioned_at=utcnow())
            )
    enqueue_created(runtime, created)
    for submitted_at in waiting.values():
        metrics.observe_stage("actioned", submitted_at)
    return Acted(len(pks), len(set(content_pks)) - len(pks), len(created))
