"""A fetch paces the garbage collector and leaves it as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hma_framework.exchanges.gc_pacing import FETCH_GEN0_THRESHOLD, paced_collector


@pytest.fixture
def collector() -> Iterator[None]:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    yield
    gc.set_threshold(*threshold)
    if not frozen:
        gc.unfreeze()


@pytest.mark.usefixtures("collector")
def test_the_heap_is_frozen_and_young_collections_rarer_only_for_the_while() -> None:
    assert gc.get_freeze_count() == 0
    before = gc.get_threshold()
    with paced_collector():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (FETCH_GEN0_THRESHOLD, *before[1:])
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


@pytest.mark.usefixtures("collector")
def test_a_heap_frozen_before_stays_frozen() -> None:
    gc.freeze()  # as a worker forked by ``hma worker --processes`` finds it
    frozen = gc.get_freeze_count()
    with paced_collector():
        pass
    assert gc.get_freeze_count() == frozen
