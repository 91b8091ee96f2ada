"""Cold starts: one index build per host, shared by every process, rows read by the driver."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import attrs
from sqlalchemy import delete, select

from hma_framework.index.manager import IndexManager
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.signal_scan import iter_signal_rows
from hma_framework.store.tables import BankChangeRow, IndexSnapshotChunkRow, IndexSnapshotRow


def random_pdq(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline()


def test_signal_rows_come_from_the_driver_in_batches(runtime: Runtime) -> None:
    banks = Banks(runtime.store)
    rng = random.Random(1)
    hashes = [random_pdq(rng) for _ in range(250)]
    banks.create_bank("a")
    banks.add_members("a", [NewMember(signals=(("pdq", h),)) for h in hashes])
    banks.add_member("a", NewMember(signals=(("video_md5", "a" * 32),)))
    batches = list(iter_signal_rows(runtime.store, "pdq", batch=100))
    assert [len(b) for b in batches] == [100, 100, 50]
    rows = [row for batch in batches for row in batch]
    assert sorted(value for _, value in rows) == sorted(hashes)
    assert all(isinstance(pk, int) and isinstance(value, str) for pk, value in rows)
    assert len({pk for pk, _ in rows}) == 250
    assert [len(b) for b in iter_signal_rows(runtime.store, "video_md5")] == [1]
    assert list(iter_signal_rows(runtime.store, "nothing_stored")) == []


def test_processes_starting_together_build_once_and_share_the_snapshot(
    runtime: Runtime, settings: Settings
) -> None:
    banks = Banks(runtime.store)
    rng = random.Random(2)
    hashes = [random_pdq(rng) for _ in range(30_000)]
    banks.create_bank("a")
    banks.add_members("a", [NewMember(signals=(("pdq", h),)) for h in hashes])
    script = Path(__file__).with_name("index_loader.py")
    arguments = [settings.database_url, settings.redis_url, settings.data_dir, hashes[123]]
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert read_line(process).strip() == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = [read_line(process).split(maxsplit=2) for process in processes]
        assert sorted(source for source, _, _ in reports) == ["records", "snapshot"]
        for _, size, matched in reports:
            assert int(size) == 30_000 and matched.strip() == repr([hashes[123]])
        for process in processes:
            # Both serve from the snapshot's files, the builder too: their pages are shared.
            maps = Path(f"/proc/{process.pid}/maps").read_text()
            assert "pdq/segment0.codes.npy" in maps
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=60)


def test_a_new_host_starts_from_the_shared_snapshot_then_the_change_log(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    banks = Banks(runtime.store)
    rng = random.Random(4)
    hashes = [random_pdq(rng) for _ in range(20_000)]
    banks.create_bank("a")
    banks.add_members("a", [NewMember(signals=(("pdq", h),)) for h in hashes])

    def host(folder: str) -> IndexManager:
        shared = attrs.evolve(settings.index, shared_snapshots=True)
        host_settings = attrs.evolve(settings, data_dir=str(tmp_path / folder), index=shared)
        return IndexManager(host_settings, runtime.registry, runtime.store, refresh_interval=0)

    first = host("first")
    assert set(first.save_snapshots()) >= {"pdq", "video_md5"}
    assert first.loaded_from["pdq"] == "records"
    with runtime.store.reading() as session:
        pointer = session.get(IndexSnapshotRow, "pdq")
        assert pointer is not None and pointer.entries == 20_000
    assert host("first-again").save_snapshots()  # a newer generation replaces the old one
    with runtime.store.reading() as session:
        generations = set(session.scalars(select(IndexSnapshotChunkRow.generation).distinct()))
        assert generations == {2}  # both signal types' second publication, nothing older
        pointer = session.get(IndexSnapshotRow, "pdq")
        assert pointer is not None and pointer.generation == 2

    late = random_pdq(rng)
    banks.add_member("a", NewMember(signals=(("pdq", late),)))  # after the snapshot
    joining = host("joining")  # an empty data folder: no build from the records
    assert [m.stored_signal for m in joining.match("pdq", late)] == [late]
    assert joining.loaded_from["pdq"] == "shared"
    assert joining.size("pdq") == 20_001
    assert [m.stored_signal for m in joining.match("pdq", hashes[7])] == [hashes[7]]
    assert (tmp_path / "joining" / "index" / "pdq" / "snapshot.json").exists()

    unshared = IndexManager(
        attrs.evolve(settings, data_dir=str(tmp_path / "unshared")),
        runtime.registry,
        runtime.store,
    )
    unshared.load()
    assert unshared.loaded_from["pdq"] == "records"  # the setting is off by default


def test_a_process_moves_to_the_newest_snapshot_of_its_host(
    runtime: Runtime, settings: Settings
) -> None:
    banks = Banks(runtime.store)
    rng = random.Random(5)
    hashes = [random_pdq(rng) for _ in range(20_000)]
    banks.create_bank("a")
    member_pks = banks.add_members("a", [NewMember(signals=(("pdq", h),)) for h in hashes])
    serving = IndexManager(settings, runtime.registry, runtime.store, refresh_interval=0)
    serving.load()  # builds, writes the host's snapshot, serves from it
    codes = settings.data_path / "index" / "pdq" / "segment0.codes.npy"
    assert f"{codes}\n" in Path("/proc/self/maps").read_text()

    later = [random_pdq(rng) for _ in range(3)]
    for signal in later:
        banks.add_member("a", NewMember(signals=(("pdq", signal),)))
    banks.remove_member(member_pks[0])
    maintenance = IndexManager(settings, runtime.registry, runtime.store)
    maintenance.save_snapshots()  # replaces the folder the serving process maps
    # The old files are gone from the folder; the serving process still maps them, and the
    # process that wrote the new snapshot already serves from it.
    maps = Path("/proc/self/maps").read_text()
    assert "segment0.codes.npy (deleted)\n" in maps and f"{codes}\n" in maps
    assert maintenance.size("pdq") == 20_002
    before = serving._live["pdq"].index

    banks.add_member("a", NewMember(signals=(("pdq", late := random_pdq(rng)),)))
    assert serving.adopt_snapshots(["pdq"]) == ["pdq"]
    assert serving._live["pdq"].index is not before
    for signal in (*later, late, hashes[5]):
        assert [m.stored_signal for m in serving.match("pdq", signal)] == [signal]
    assert serving.match("pdq", hashes[0]) == []
    assert serving.size("pdq") == 20_000 + 3 + 1 - 1

    # The refresh tick notices a newer snapshot by itself and adopts it off the query path.
    maintenance.save_snapshots()
    current = serving._live["pdq"].index
    exact = serving._live["video_md5"].index  # a hash map: reloading it would share nothing
    serving.refresh(force=True)
    assert serving._adopting is not None
    serving._adopting.join(30)
    assert serving._live["pdq"].index is not current
    assert serving._live["video_md5"].index is exact
    assert [m.stored_signal for m in serving.match("pdq", late)] == [late]


def test_the_change_log_is_read_in_seq_ranges_across_gaps(runtime: Runtime) -> None:
    banks = Banks(runtime.store)
    rng = random.Random(6)
    banks.create_bank("a")
    for _ in range(30):
        banks.add_member("a", NewMember(signals=(("pdq", random_pdq(rng)),)))
    with runtime.store.reading() as session:
        seqs = sorted(session.scalars(select(BankChangeRow.seq)))
    gone = seqs[5:25]  # a gap much wider than the page size asked for below
    with runtime.store.transaction() as session:
        session.execute(delete(BankChangeRow).where(BankChangeRow.seq.in_(gone)))
    kept = [s for s in seqs if s not in gone]
    read, after = [], 0
    while page := banks.signal_changes_after(after, limit=4):
        assert len(page) <= 4 and [c.seq for c in page] == sorted(c.seq for c in page)
        read.extend(c.seq for c in page)
        after = page[-1].seq
    assert read == kept
