"""The key-table path finds exactly what a full XOR-popcount comparison finds.

The last test runs a real pass on SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from sqlalchemy import select

from hma_framework.index.holders import Holder
from hma_framework.retroaction import hamming, pigeonhole
from hma_framework.retroaction.automatic import run_pass
from hma_framework.retroaction.matching import (
    Probe,
    build_probe,
    raw_values,
    scan,
    with_hamming,
)
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.content import ComputedSignal, Submission
from hma_framework.store.content_queries import ContentQueries
from hma_framework.store.tables import SignalRow


def _flip(value: str, bits: int, rng: random.Random) -> str:
    """``value`` (hex) with exactly ``bits`` distinct bits flipped."""
    number = int(value, 16)
    for bit in rng.sample(range(4 * len(value)), bits):
        number ^= 1 << bit
    return f"{number:0{len(value)}x}"


def _distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def _planted(rng: random.Random, hex_chars: int) -> tuple[list[str], list[str]]:
    """New signals, and content holding random codes plus copies of them at 0..40 bits."""
    new = [f"{rng.getrandbits(4 * hex_chars):0{hex_chars}x}" for _ in range(60)]
    content = [f"{rng.getrandbits(4 * hex_chars):0{hex_chars}x}" for _ in range(3000)]
    for distance in range(41):  # 0..31 must be found at threshold 31, 32..40 must not
        for _ in range(3):
            content[rng.randrange(len(content))] = _flip(rng.choice(new), distance, rng)
    # Near-duplicates of one another too: several new signals share keys with one content.
    new[1] = _flip(new[0], 5, rng)
    content[0] = _flip(new[0], 3, rng)
    return new, content


def _brute(new: list[str], content: list[str], radius: int) -> list[tuple[int, int, int]]:
    return sorted(
        (row, column, d)
        for row, value in enumerate(content)
        for column, target in enumerate(new)
        if (d := _distance(value, target)) <= radius
    )


@pytest.mark.parametrize(("bits", "radius"), [(256, 31), (256, 0), (256, 9), (256, 47), (64, 12)])
def test_tables_find_exactly_the_pairs_within_the_radius(bits: int, radius: int) -> None:
    rng = random.Random(bits * 100 + radius)
    new, content = _planted(rng, bits // 4)
    codes = hamming.words(raw_values(new), bits)
    tables = pigeonhole.Tables.build(codes, radius)
    found = []
    for start in range(0, len(content), 1000):  # in batches, as the ring is read
        words = hamming.words(raw_values(content[start : start + 1000]), bits)
        found += [(start + row, column, d) for row, column, d in tables.near(words)]
    expected = _brute(new, content, radius)
    assert found == expected
    assert found == sorted(hamming.near(hamming.words(raw_values(content), bits), codes, radius))
    if radius == 31:  # planted pairs at every distance up to the radius, none beyond
        assert {d for _, _, d in found} >= set(range(32))


def test_the_cost_rule_keeps_few_signals_direct_and_takes_tables_for_many() -> None:
    assert not pigeonhole.worth_it(1, 256, 31)
    assert pigeonhole.worth_it(16, 256, 31)
    assert pigeonhole.worth_it(10_000, 256, 31)
    assert not pigeonhole.worth_it(10_000, 256, 255), "every key would be expanded"
    assert not pigeonhole.worth_it(200_000, 256, 31), "over the memory bound: the index"
    usable = pigeonhole.estimate(10_000, 256, 31)
    assert usable is not None and usable[1] < 10 * 2**20, "9.2 MiB of tables for 10,000"


def _probe(new: list[str], threshold: int) -> Probe:
    from hma_pdq.index import make_pdq_index

    index = make_pdq_index(Settings())
    index.add(list(enumerate(new)))
    holders = {
        pk: [Holder(value, 1, "b", (), {}, pk, None, (), "", None, {})]
        for pk, value in enumerate(new)
    }
    return with_hamming(Probe("pdq", index, holders, threshold), list(enumerate(new)), 256)


@pytest.mark.parametrize("count", [1, 60])
def test_scan_records_the_same_matches_on_either_path(count: int) -> None:
    """One new signal goes the direct way, 60 through the tables: both exact."""
    rng = random.Random(count)
    new, content = _planted(rng, 64)
    new = new[:count]
    probe = _probe(new, 31)
    assert (probe.tables is not None) == (count > 1) and probe.codes is not None
    pks = np.arange(1000, 1000 + len(content))
    batches = [(pks[s : s + 700], raw_values(content[s : s + 700])) for s in range(0, 3000, 700)]
    found = sorted(
        (content_pk - 1000, match.member_pk, match.distance)
        for _, matches in scan(probe, batches)
        for content_pk, match in matches
    )
    assert found == _brute(new, content, 31) and found


def test_a_large_addition_goes_through_the_key_tables_and_finds_exactly_the_near_content(
    runtime: Runtime,
) -> None:
    """40 new members (the key-table path) against content at 0..40 bits from them."""
    rng = random.Random(12)
    banked = [f"{rng.getrandbits(256):064x}" for _ in range(40)]
    content = runtime.content
    near: dict[str, int] = {}
    for distance in range(0, 41, 2):
        # Flips spread over all sixteen 16-bit keys: no key is left equal past 16 bits.
        flips = sum(1 << (16 * (i % 16) + i // 16) for i in range(distance))
        value = f"{int(banked[distance // 2], 16) ^ flips:064x}"
        _, pk = content.submit(Submission(f"post-{distance}", "photo", "hash"), force=False)
        content.record_signals(pk, [ComputedSignal("pdq", value)])
        content.record_matches(pk, [])
        near[value] = pk
    banks = Banks(runtime.store)
    banks.create_bank("import")
    members = [banks.add_member("import", NewMember(signals=(("pdq", value),))) for value in banked]
    with runtime.store.reading() as session:
        signals = session.execute(select(SignalRow.id, SignalRow.signal_value)).all()
    probe = build_probe(runtime, "pdq", [(pk, value) for pk, value in signals], lambda _: True)
    assert probe is not None and probe.tables is not None
    report = run_pass(runtime)
    assert report["members"] == 40 and report["signals"] == 40
    threshold = runtime.registry.signal_types["pdq"].default_threshold
    expected = {
        (pk, members[n])
        for value, pk in near.items()
        for n, target in enumerate(banked)
        if bin(int(value, 16) ^ int(target, 16)).count("1") <= threshold
    }
    found = {
        (pk, match["member_id"])
        for pk in near.values()
        for match in ContentQueries(runtime.store).matches(content_pk=pk)
    }
    assert found == expected and len(expected) == threshold // 2 + 1
    assert report["matched_content"] == len(expected)
