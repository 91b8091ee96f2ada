"""RQ queues by role, each with RQ's JSON serializer so any worker or tool can read a job."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from hma_framework import log_context
from hma_framework.settings import QUEUE_NAMES

QUEUE_PREFIX = "hma-"


def queue_name(role: str) -> str:
    if role not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {role!r}; known: {', '.join(QUEUE_NAMES)}")
    return QUEUE_PREFIX + role


class ContextQueue(Queue):
    """A queue whose jobs carry the request and content ids of whoever enqueued them."""

    def create_job(self, *args: Any, **kwargs: Any) -> Job:
        context = log_context.current()
        if context:
            kwargs["meta"] = {**context, **(kwargs.get("meta") or {})}
        return super().create_job(*args, **kwargs)


class Queues:
    """One ``rq.Queue`` per role: hash, match, action, fetch, maintenance."""

    def __init__(self, connection: Redis, default_timeout: int) -> None:
        self._queues = {
            role: ContextQueue(
                queue_name(role),
                connection=connection,
                serializer=JSONSerializer,
                default_timeout=default_timeout,
            )
            for role in QUEUE_NAMES
        }

    def __getitem__(self, role: str) -> Queue:
        try:
            return self._queues[role]
        except KeyError:
            raise ValueError(f"unknown queue {role!r}; known: {', '.join(QUEUE_NAMES)}") from None

    def select(self, roles: Iterable[str]) -> list[Queue]:
        return [self[role] for role in roles]

    def all(self) -> list[Queue]:
        return list(self._queues.values())
