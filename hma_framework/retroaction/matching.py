"""The scan both retroaction paths share: many content signals through a few bank signals.

The bank signals to look for (a pass's new members, or a rescan's banks) go into a fresh
index of the signal type's own kind (the PDQ plugin's vectorised one, an exact-match set, or
the ``compare_hash`` linear scan for types without a fast index), and content signals are
queried against it in large batches (``query_batch``). Types with ``hamming_bits`` skip the
index: a few new signals are compared with each batch directly (``hamming``), more go
through flip-expanded key tables (``pigeonhole``), whichever a cost rule finds cheaper; both
are exact. Hits are resolved to the bank members
that hold them, at each bank's threshold, and recorded as retroactive matches; content that
gained a match has its action rules evaluated as a live match would.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs
import numpy as np

from hma_framework.index.holders import Holder, HolderCache
from hma_framework.pipeline.acting import evaluate_actions
from hma_framework.retroaction import hamming, pigeonhole
from hma_framework.runtime import Runtime
from hma_framework.store import content as records
from hma_framework.store.bulk import BulkWriter
from hma_framework.store.content import RecordedMatch
from hma_framework.store.tables import ContentRow, utcnow
from hma_framework.types import IndexMatch, SignalIndex

log = logging.getLogger(__name__)

#: Content statuses whose actions were evaluated already (or never will be, without a
#: match): a retroactive match evaluates them again. Content still in the pipeline gets its
#: retroactive matches evaluated by its own act stage.
SETTLED = (records.NO_MATCH, records.ACTIONED)


@attrs.frozen
class Probe:
    """The bank signals of one signal type a scan looks for, indexed, with their holders.

    ``codes`` (with ``code_pks``, their signal ids) are the signals as Hamming words when
    the type has ``hamming_bits`` (see :func:`with_hamming`): the scan then compares them
    directly with each batch, or through ``tables`` when they are many.
    """

    signal_type: str
    index: SignalIndex
    holders: dict[int, list[Holder]]
    default_threshold: int
    hamming_bits: int | None = None
    codes: np.ndarray | None = None
    code_pks: tuple[int, ...] = ()
    tables: pigeonhole.Tables | None = None

    @property
    def max_distance(self) -> int:
        return max(
            [
                self.default_threshold,
                *(
                    int(h.thresholds.get(self.signal_type, self.default_threshold))
                    for found in self.holders.values()
                    for h in found
                ),
            ]
        )


def build_probe(
    runtime: Runtime,
    signal_type: str,
    signals: Sequence[tuple[int, str]],
    keep: Callable[[Holder], bool],
) -> Probe | None:
    """An index of ``signals`` and their enabled holders that ``keep`` accepts; None if none."""
    holders = {
        pk: [h for h in found if keep(h)]
        for pk, found in HolderCache(runtime.store).holders(pk for pk, _ in signals).items()
    }
    holders = {pk: found for pk, found in holders.items() if found}
    if not holders:
        return None
    kept = [(pk, value) for pk, value in signals if pk in holders]
    index = runtime.indexes.new_index(signal_type)
    index.add(kept)
    record = runtime.registry.signal_types[signal_type]
    probe = Probe(signal_type, index, holders, record.default_threshold)
    if record.hamming_bits is None:
        return probe
    return with_hamming(probe, kept, record.hamming_bits)


def with_hamming(probe: Probe, signals: Sequence[tuple[int, str]], bits: int) -> Probe:
    """``probe`` with the cheapest exact Hamming path for its signals, if any beats the index.

    Per content signal, comparing with each new signal directly costs ~30 ns a signal; the
    key tables cost a fixed ~250 ns plus ~20 ns a candidate (~0.4% of the new signals at
    threshold 31), so they win from ~8 signals on, by far for thousands. Above
    ``hamming.MAX_DIRECT`` signals where the tables are unusable (a very wide threshold, or
    more than ``pigeonhole.MAX_BYTES`` of tables: past 65,536 PDQ signals at 31)
    the index does the work.
    """
    radius = probe.max_distance
    use_tables = pigeonhole.worth_it(len(signals), bits, radius)
    if not use_tables and len(signals) > hamming.MAX_DIRECT:
        return probe
    codes = hamming.words(raw_values([value for _, value in signals]), bits)
    pks = tuple(pk for pk, _ in signals)
    tables = pigeonhole.Tables.build(codes, radius) if use_tables else None
    return attrs.evolve(probe, hamming_bits=bits, codes=codes, code_pks=pks, tables=tables)


def raw_values(values: Sequence[str]) -> np.ndarray:
    """Signal values as a numpy bytes array, the ring's own form."""
    return np.array([value.encode() for value in values], dtype=np.bytes_)


def _hits(probe: Probe, raw: np.ndarray, radius: int) -> Iterator[tuple[int, list[IndexMatch]]]:
    """``(row, index matches)`` for the rows of ``raw`` near any of the probe's signals."""
    bits = probe.hamming_bits
    if probe.codes is not None and bits is not None and raw.dtype.itemsize * 4 >= bits:
        words = hamming.words(raw, bits)
        if probe.tables is not None and probe.tables.radius == radius:
            pairs = probe.tables.near(words)
        else:
            pairs = hamming.near(words, probe.codes, radius)
        per_row: dict[int, list[IndexMatch]] = defaultdict(list)
        for row, column, distance in pairs:
            per_row[row].append(IndexMatch(probe.code_pks[column], distance))
        yield from sorted(per_row.items())
        return
    values: list[str] = np.char.decode(raw, "utf-8").tolist()
    for row, found in enumerate(probe.index.query_batch(values, radius)):
        if found:
            yield row, found


def scan(
    probe: Probe, batches: Iterable[tuple[Sequence[int] | np.ndarray, np.ndarray]]
) -> Iterator[tuple[int, list[tuple[int, RecordedMatch]]]]:
    """Per batch of ``(content pks, raw values)``: how many were scanned, and what matched."""
    radius = probe.max_distance
    default = probe.default_threshold
    for content_pks, raw in batches:
        found: list[tuple[int, RecordedMatch]] = []
        for row, hits in _hits(probe, raw, radius):
            value = bytes(raw[row]).decode()
            for hit in hits:
                for holder in probe.holders.get(hit.entry_id, ()):
                    if hit.distance > int(holder.thresholds.get(probe.signal_type, default)):
                        continue
                    match = RecordedMatch(
                        bank_pk=holder.bank_pk,
                        member_pk=holder.member_pk,
                        signal_type=probe.signal_type,
                        content_signal=value,
                        member_signal=holder.stored_signal,
                        distance=hit.distance,
                    )
                    found.append((int(content_pks[row]), match))
        yield len(raw), found


def record_retroactive(runtime: Runtime, found: Sequence[tuple[int, RecordedMatch]]) -> set[int]:
    """Record matches not recorded yet, marked retroactive; the content pks that gained one."""
    if not found:
        return set()
    with runtime.store.transaction() as session:
        bulk = BulkWriter(session)
        now = bulk.timestamp(utcnow())
        returned = bulk.insert_rows(
            "INSERT INTO match (content_pk, bank_pk, member_pk, signal_type, content_signal, "
            "member_signal, distance, retroactive, created_at)",
            [
                (
                    pk,
                    m.bank_pk,
                    m.member_pk,
                    m.signal_type,
                    m.content_signal,
                    m.member_signal,
                    m.distance,
                    True,
                    now,
                )
                for pk, m in found
            ],
            "ON CONFLICT DO NOTHING RETURNING content_pk",
        )
    return {int(row[0]) for row in returned}


def act_on(runtime: Runtime, content_pks: Iterable[int]) -> int:
    """Evaluate action rules for content that gained retroactive matches; how many fired.

    Deliveries are unique per content and action, so an action performed already (by the
    live match, or an earlier retroactive one) is not performed again.
    """
    fired = 0
    for content_pk in sorted(content_pks):
        row = runtime.content.get_row(content_pk)
        if row is None or row.status not in SETTLED:
            continue
        if evaluate_actions(runtime, content_pk):
            fired += 1
        with runtime.store.transaction() as session:
            current = session.get(ContentRow, content_pk)
            if current is not None and current.status in SETTLED:
                current.status, current.actioned_at = records.ACTIONED, utcnow()
                current.matched_at = current.matched_at or utcnow()
    return fired
