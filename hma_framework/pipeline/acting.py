"""The action step's seam: where matched content meets action rules and handlers.

``act_content`` calls :func:`evaluate_actions` once per matched content and then records
``actioned_at``. Rules over match labels and the handlers they call (webhooks, plugins) plug in
here; until rules exist, evaluation finds nothing to do, and the record still shows that the
action stage ran.
"""

from __future__ import annotations

import logging

from hma_framework.runtime import Runtime

log = logging.getLogger(__name__)


def evaluate_actions(runtime: Runtime, content_pk: int) -> list[str]:
    """Evaluate action rules for matched content; returns the names of the rules that fired."""
    log.debug("content %d: no action rules are configured", content_pk)
    return []
