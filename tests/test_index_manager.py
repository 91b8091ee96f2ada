"""The index manager on real stores: freshness, kill switches, thresholds, snapshots."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from threatexchange.content_type.content_base import ContentType
from threatexchange.content_type.photo import PhotoContent
from threatexchange.signal_type.signal_base import (
    FileHasher,
    SignalComparisonResult,
    SimpleSignalType,
    TrivialLinearSearchHashIndex,
)

from hma_framework.hookspecs import hookimpl
from hma_framework.index.manager import IndexManager
from hma_framework.index.simple import LinearScanIndex
from hma_framework.registry import make_registry
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.types import IndexRecord, SignalTypeRecord

BASE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def flip_bits(signal: str, count: int, seed: int = 0) -> str:
    """``signal`` with ``count`` distinct bits flipped (a PDQ hash ``count`` away)."""
    value = int(signal, 16)
    for bit in random.Random(seed).sample(range(256), count):
        value ^= 1 << bit
    return f"{value:064x}"


def pdq(signal: str) -> NewMember:
    return NewMember(signals=(("pdq", signal),))


@pytest.fixture
def banks(runtime: Runtime) -> Banks:
    return Banks(runtime.store)


def fresh_manager(runtime: Runtime, refresh: float = 0.0) -> IndexManager:
    return IndexManager(runtime.settings, runtime.registry, runtime.store, refresh_interval=refresh)


def test_matches_resolve_to_members_and_follow_changes(runtime: Runtime, banks: Banks) -> None:
    banks.create_bank("known", tags=["csam"])
    first = banks.add_member(
        "known",
        NewMember(signals=(("pdq", BASE),), content_id="c-9", tags=("seen",), notes="from review"),
    )
    manager = fresh_manager(runtime)
    [match] = manager.match("pdq", flip_bits(BASE, 10))
    assert (match.bank_name, match.member_pk, match.distance) == ("known", first, 10)
    assert (match.member_content_id, match.member_tags, match.bank_tags) == (
        "c-9",
        ("seen",),
        ("csam",),
    )
    assert match.stored_signal == BASE and match.member_notes == "from review"
    assert manager.match("pdq", flip_bits(BASE, 40)) == []  # default threshold 31

    other = flip_bits(BASE, 100, seed=1)
    assert manager.match("pdq", other) == []
    second = banks.add_member("known", pdq(other))  # incremental: no rebuild
    assert [m.member_pk for m in manager.match("pdq", other)] == [second]
    banks.remove_member(second)
    assert manager.match("pdq", other) == []
    assert manager.size("pdq") == 1


def test_kill_switches_act_on_the_very_next_query(runtime: Runtime, banks: Banks) -> None:
    banks.create_bank("a")
    member = banks.add_member("a", pdq(BASE))
    manager = IndexManager(
        runtime.settings, runtime.registry, runtime.store, refresh_interval=3600
    )  # never refreshes on its own
    assert len(manager.match("pdq", BASE)) == 1
    banks.set_member_enabled(member, False)
    assert manager.match("pdq", BASE) == []
    banks.set_member_enabled(member, True)
    assert len(manager.match("pdq", BASE)) == 1
    banks.set_bank_enabled("a", False)
    assert manager.match("pdq", BASE) == []
    banks.set_bank_enabled("a", True)
    assert len(manager.match("pdq", BASE)) == 1


@pytest.mark.parametrize("threshold", [0, 31, 52, 63])
def test_bank_thresholds_apply(runtime: Runtime, banks: Banks, threshold: int) -> None:
    banks.create_bank("strict", thresholds={"pdq": threshold})
    banks.add_member("strict", pdq(BASE))
    manager = fresh_manager(runtime)
    for distance in sorted({0, 1, max(threshold - 1, 0), threshold, threshold + 1, 64}):
        found = manager.match("pdq", flip_bits(BASE, distance, seed=distance))
        assert bool(found) == (distance <= threshold), distance
        if found:
            assert found[0].distance == distance


def test_one_hash_in_two_banks_and_bank_filters(runtime: Runtime, banks: Banks) -> None:
    banks.create_bank("a")
    banks.create_bank("b", thresholds={"pdq": 52})
    banks.add_member("a", pdq(BASE))
    banks.add_member("b", pdq(BASE))
    manager = fresh_manager(runtime)
    near = flip_bits(BASE, 20)
    assert [m.bank_name for m in manager.match("pdq", near)] == ["a", "b"]
    assert len({m.signal_pk for m in manager.match("pdq", near)}) == 1  # stored once
    far = flip_bits(BASE, 45)
    assert [m.bank_name for m in manager.match("pdq", far)] == ["b"]
    assert [m.bank_name for m in manager.match("pdq", near, banks=["b"])] == ["b"]
    banks.delete_bank("b")
    assert [m.bank_name for m in manager.match("pdq", near)] == ["a"]
    banks.delete_bank("a")
    assert manager.match("pdq", near) == [] and manager.size("pdq") == 0


def test_many_signals_at_once_match_as_each_alone(runtime: Runtime, banks: Banks) -> None:
    """``match_many`` (batch submissions) answers in order exactly what ``match`` answers."""
    banks.create_bank("a")
    banks.create_bank("b", thresholds={"pdq": 52})
    other = flip_bits(BASE, 128, seed=7)
    banks.add_member("a", pdq(BASE))
    banks.add_member("b", pdq(BASE))
    switched_off = banks.add_member("a", pdq(other))
    manager = IndexManager(
        runtime.settings, runtime.registry, runtime.store, refresh_interval=3600
    )  # kill switches must still act without a refresh
    banks.set_member_enabled(switched_off, False)
    signals = [flip_bits(BASE, d, seed=d) for d in (0, 20, 45, 60)] + [other, flip_bits(other, 3)]
    for bank_filter in (None, ["b"]):
        each = [manager.match("pdq", s, banks=bank_filter) for s in signals]
        assert manager.match_many("pdq", signals, banks=bank_filter) == each
    assert [len(found) for found in each] == [1, 1, 1, 0, 0, 0]
    assert [[m.bank_name for m in found] for found in manager.match_many("pdq", signals)] == [
        ["a", "b"],
        ["a", "b"],
        ["b"],
        [],
        [],
        [],
    ]
    assert manager.match_many("pdq", [flip_bits(BASE, 200)]) == [[]]


def test_exact_signal_types_match_exactly(runtime: Runtime, banks: Banks) -> None:
    banks.create_bank("videos")
    banks.add_member("videos", NewMember(signals=(("video_md5", "d" * 32),)))
    manager = fresh_manager(runtime)
    assert [m.distance for m in manager.match("video_md5", "d" * 32)] == [0]
    assert manager.match("video_md5", "e" * 32) == []


def test_restart_loads_the_snapshot_then_catches_up(runtime: Runtime, banks: Banks) -> None:
    banks.create_bank("a")
    banks.add_members("a", [pdq(flip_bits(BASE, 64, seed=s)) for s in range(50)])
    banks.add_member("a", NewMember(signals=(("video_md5", "1" * 32),)))
    writer = fresh_manager(runtime)
    saved = writer.save_snapshots()
    assert saved["video_md5"] == 1
    snapshot_dir = runtime.settings.data_path / "index"
    assert (snapshot_dir / "video_md5" / "snapshot.json").exists()

    late = flip_bits(BASE, 3)
    banks.add_member("a", pdq(late))  # after the snapshot: must come from the change log
    banks.add_member("a", NewMember(signals=(("video_md5", "2" * 32),)))
    restarted = fresh_manager(runtime)
    assert [m.stored_signal for m in restarted.match("pdq", late)] == [late]
    assert len(restarted.match("video_md5", "2" * 32)) == 1
    assert len(restarted.match("video_md5", "1" * 32)) == 1
    assert restarted.size("pdq") == 51 and restarted.size("video_md5") == 2


def test_another_process_sees_a_new_hash_within_a_second(
    runtime: Runtime, banks: Banks, settings: Settings
) -> None:
    banks.create_bank("a")
    target = flip_bits(BASE, 7)
    script = Path(__file__).with_name("index_watcher.py")
    watcher = subprocess.Popen(
        [
            sys.executable,
            str(script),
            settings.database_url,
            settings.redis_url,
            settings.data_dir,
            target,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "ready"
        added_at = time.time()
        banks.add_member("a", pdq(BASE))
        seen_at = float(watcher.stdout.readline())
        assert watcher.wait(10) == 0
    finally:
        watcher.kill()
    assert seen_at - added_at < 1.0


class Bits16Signal(SimpleSignalType, FileHasher):
    """A toy third-party signal type with its own distance and no index of its own."""

    INDICATOR_TYPE = "HASH_BITS16"

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [PhotoContent]

    @classmethod
    def get_index_cls(cls) -> type[TrivialLinearSearchHashIndex]:
        return TrivialLinearSearchHashIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        value = signal_str.strip().lower()
        if len(value) != 4 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("four hex digits")
        return value

    @classmethod
    def compare_hash(cls, hash1: str, hash2: str) -> SignalComparisonResult:
        distance = bin(int(hash1, 16) ^ int(hash2, 16)).count("1")
        return SignalComparisonResult.from_simple_dist(distance, 2)

    @classmethod
    def hash_from_file(cls, file: Path) -> str:
        return f"{sum(file.read_bytes()) % 65536:04x}"

    @staticmethod
    def get_examples() -> list[str]:
        return ["beef"]


def test_signal_type_without_an_index_falls_back_to_a_linear_scan(
    settings: Settings, runtime: Runtime
) -> None:
    class Plugin:
        __name__ = "bits16_plugin"

        @hookimpl
        def hma_signal_types(self) -> list[SignalTypeRecord]:
            return [SignalTypeRecord(Bits16Signal, default_threshold=2)]

    registry = make_registry(extra_plugins=[Plugin()], strict=True)
    manager = IndexManager(settings, registry, runtime.store, refresh_interval=0)
    assert isinstance(manager.new_index("bits16"), LinearScanIndex)
    banks = Banks(runtime.store)
    banks.create_bank("toys")
    banks.add_member("toys", NewMember(signals=(("bits16", "beef"),)))
    assert [m.distance for m in manager.match("bits16", "beef")] == [0]
    assert [m.distance for m in manager.match("bits16", "beec")] == [2]  # 0xf ^ 0xc: 2 bits
    assert manager.match("bits16", "0000") == []


class CallCountingIndex(LinearScanIndex):
    """A plugin's index that records each ``add``/``remove`` call it receives."""

    def __init__(self) -> None:
        super().__init__(Bits16Signal)
        self.calls: list[tuple[str, int]] = []

    def add(self, entries: Sequence[tuple[int, str]]) -> None:
        self.calls.append(("add", len(entries)))
        super().add(entries)

    def remove(self, entry_ids: Sequence[int]) -> None:
        self.calls.append(("remove", len(entry_ids)))
        super().remove(entry_ids)


def test_a_bulk_change_reaches_each_index_a_run_at_a_time_in_order(
    settings: Settings, runtime: Runtime
) -> None:
    """Thousands of logged additions (an exchange's batch) are one ``add`` call, not one each."""

    class Plugin:
        __name__ = "bits16_counted"

        @hookimpl
        def hma_signal_types(self) -> list[SignalTypeRecord]:
            return [SignalTypeRecord(Bits16Signal, default_threshold=0)]

        @hookimpl
        def hma_indexes(self) -> list[IndexRecord]:
            return [IndexRecord("bits16", factory=lambda _settings: CallCountingIndex())]

    registry = make_registry(extra_plugins=[Plugin()], strict=True)
    manager = IndexManager(settings, registry, runtime.store, refresh_interval=0)
    manager.match("bits16", "beef")  # loaded, empty
    banks = Banks(runtime.store)
    banks.create_bank("toys")
    values = [f"{i:04x}" for i in range(300)]
    pks = banks.add_members("toys", [NewMember(signals=(("bits16", v),)) for v in values])
    for pk in pks[:20]:
        banks.remove_member(pk)
    banks.add_member("toys", NewMember(signals=(("bits16", values[0]),)))  # back again
    assert manager.match("bits16", values[0]) and not manager.match("bits16", values[1])
    assert manager.match("bits16", values[299])
    index = manager._live["bits16"].index
    assert isinstance(index, CallCountingIndex)
    # The 20 removed before this refresh are gone from the signal table: not added at all.
    assert index.calls == [("add", 280), ("remove", 20), ("add", 1)]


def test_a_database_outage_in_the_freshness_read_is_a_database_error() -> None:
    """The API turns SQLAlchemy's ``DBAPIError`` into 503; a bare driver error would be a 500."""
    from sqlalchemy.exc import OperationalError

    from hma_framework.index.holders import HolderCache
    from hma_framework.store.db import Store

    store = Store("postgresql+psycopg://postgres@127.0.0.1:9/nowhere")  # nothing listens on 9
    try:
        with pytest.raises(OperationalError):
            HolderCache(store).holders([1])
    finally:
        store.close()
