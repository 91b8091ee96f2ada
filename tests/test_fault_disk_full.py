"""Fault injection: the disk that holds submitted media fills up, then space returns.

The data folder's ``media`` folder is a 2 MiB tmpfs mounted by the test (a real ENOSPC from a
real filesystem; skipped where mounting is not permitted). Once load has gone through, a
ballast file fills it: ``/submit/bytes/`` then answers 507 with a message and
``Retry-After`` (no path from the server's disk in it), records nothing for the refused
content and leaves no partial file behind, while ``/submit/hash/`` (no media) goes on. When
the ballast is deleted the client's retries are accepted and everything completes: every
submission terminal, every delivery received once under its ``webhook-id``. Prints the
figures.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hma_framework.registry import Registry
from hma_framework.settings import Settings
from hma_framework.store.content_queries import ContentQueries
from tests.fault_support import (
    assert_nothing_lost,
    impatient,
    one_database,
    receiver,
    rig,
)
from tests.test_actions_support import Receiver

__all__ = ["receiver"]  # the fixture, used by name

pytestmark = pytest.mark.slow

MEDIA_FOLDER_BYTES = 2 * 1024 * 1024
STUCK_AFTER = 2
ROUND = 8


@pytest.fixture
def small_media_folder(data_dir: Path) -> Iterator[Path]:
    """``<data_dir>/media`` on a size-limited tmpfs, unmounted after the test."""
    folder = data_dir / "media"
    folder.mkdir(mode=0o700)
    options = f"size={MEDIA_FOLDER_BYTES},mode=0700"
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run mount for a size-limited media folder: {exc}")
    if done.returncode:
        pytest.skip(
            f"a size-limited tmpfs cannot be mounted here ({done.stderr.strip()}): "
            "no honest way to a real ENOSPC for the media folder"
        )
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def _fill(folder: Path) -> int:
    """Write a ballast file until the filesystem refuses even one more byte."""
    written = 0
    descriptor = os.open(folder / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    written += os.write(descriptor, b"\0" * size)
        try:
            os.write(descriptor, b"\0")
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        else:
            raise AssertionError("the media folder took a byte more than it has room for")
    finally:
        os.close(descriptor)
    return written


def _partials(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".partial")]


@one_database()
def test_media_disk_full_refuses_clearly_and_recovers(
    settings: Settings,
    registry: Registry,
    small_media_folder: Path,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    with rig(impatient(settings, STUCK_AFTER), registry, receiver, tmp_path, "fd-") as test:
        load = test.load
        load.submit(ROUND)
        test.settle(60)

        ballast = _fill(small_media_folder)
        load.submit(ROUND)
        refused = [body for _, body in load.refused]
        assert refused and all("content_bytes" in body for body in refused)
        answer = test.admin.post("/submit/bytes/", refused[0])
        assert answer.status_code == 507, answer.text
        assert "full" in answer.json()["message"]
        assert str(small_media_folder) not in answer.text, "no server paths to callers"
        assert int(answer.headers["Retry-After"]) > 0
        queries = ContentQueries(test.runtime.store)
        unrecorded = [queries.content_pk(body["content_id"]) for body in refused]
        assert unrecorded == [None] * len(refused), "refused media records nothing"
        assert not _partials(small_media_folder), "no partial file takes up the space"

        (small_media_folder / "ballast").unlink()  # space returns
        load.retry_refused()
        test.settle(60)
    result = test.finish(
        receiver,
        {"media disk full": 1},
        f"ballast {ballast >> 10} KiB, {len(refused)} refused with 507 while full; ",
    )
    assert set(load.statuses) == {200, 507}, load.statuses
    assert not _partials(small_media_folder)
    assert_nothing_lost(result, load.sent, load.expected_deliveries)
    assert shutil.disk_usage(small_media_folder).used < MEDIA_FOLDER_BYTES // 2, "media freed"
