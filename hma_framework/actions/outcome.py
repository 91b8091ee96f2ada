"""What a handler may report beyond ``ActionOutcome``, for the delivery record and retries."""

from __future__ import annotations

import attrs

from hma_framework.types import ActionOutcome


@attrs.frozen
class DeliveryOutcome(ActionOutcome):
    """An ``ActionOutcome`` with what a remote endpoint said.

    Any handler may return one. ``retry_after_seconds`` is the earliest the endpoint wants to
    be tried again (the core waits at least that long, up to a setting). ``disable_handler``
    says the endpoint is gone for good (a webhook's 410): the handler is disabled with
    ``detail`` as the reason and its waiting deliveries are held until it is enabled again.
    """

    status_code: int | None = None
    retry_after_seconds: float | None = None
    disable_handler: bool = False
