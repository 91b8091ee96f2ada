"""The data folder is owner-only, and the upload-URL signing key is made once, atomically."""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from hma_framework.data_folder import secure_tree
from hma_framework.settings import Settings
from hma_framework.web.uploads import secret_key


def modes_under(root: Path) -> dict[str, int]:
    """``{relative path: permission bits}`` for the folder and everything in it."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


def assert_owner_only(root: Path) -> None:
    loose = {name: oct(mode) for name, mode in modes_under(root).items() if mode & 0o077}
    assert not loose, f"readable by other users: {loose}"


def _hma_with_umask_022(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env["HMA_DATA_DIR"] = str(folder / "hma-data")
    return subprocess.run(
        [sys.executable, "-m", "hma_framework", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0o022),  # a typical login shell's mask
    )


def test_cli_creates_an_owner_only_data_folder_under_umask_022(tmp_path: Path) -> None:
    for args in (("db", "upgrade"), ("keys", "create", "--name", "ops", "--scope", "admin")):
        result = _hma_with_umask_022(tmp_path, *args)
        assert result.returncode == 0, result.stderr
    data = tmp_path / "hma-data"
    assert (data / "hma.sqlite3").exists()
    assert_owner_only(data)


def test_secure_tree_tightens_what_an_older_version_left(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "media").mkdir(parents=True)
    (data / "media" / "abc").write_bytes(b"x")
    (data / "hma.sqlite3").write_bytes(b"")
    os.chmod(data, 0o755)
    os.chmod(data / "media", 0o755)
    os.chmod(data / "media" / "abc", 0o644)
    os.chmod(data / "hma.sqlite3", 0o644)  # whatever this process's umask is by now
    assert secure_tree(data) == 3  # the media folder, the media file, the old database
    assert_owner_only(data)
    assert modes_under(data)["media/abc"] == 0o600


ROUNDS = 40


def _race_for_the_key(root: str, barrier: object, results: object) -> None:
    """Ask for the key in ROUNDS fresh folders, starting each round with every other racer."""
    for number in range(ROUNDS):
        barrier.wait()  # type: ignore[attr-defined]
        settings = Settings(data_dir=f"{root}/{number}")
        try:
            key = secret_key(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
        except Exception as exc:  # the old code raised FileExistsError here
            key = f"error: {exc!r}"
        results.put((number, key))  # type: ignore[attr-defined]


def test_concurrent_first_use_yields_one_nonempty_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    racers = 8
    barrier = context.Barrier(racers)
    results = context.Queue()
    processes = [
        context.Process(target=_race_for_the_key, args=(str(tmp_path), barrier, results))
        for _ in range(racers)
    ]
    for process in processes:
        process.start()
    keys: dict[int, set[str]] = {}
    for _ in range(racers * ROUNDS):
        number, key = results.get(timeout=60)
        keys.setdefault(number, set()).add(key)
    for process in processes:
        process.join(10)
    for number, seen in keys.items():
        assert len(seen) == 1, (number, seen)
        (key,) = seen
        assert len(key) >= 40 and not key.startswith("error"), key
        path = tmp_path / str(number) / "secret_key"
        assert path.read_text() == key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_key_left_by_an_older_version_is_replaced(tmp_path: Path) -> None:
    from hma_framework.secret_key import data_folder_key

    (tmp_path / "secret_key").write_text("")
    key = data_folder_key(tmp_path)
    assert len(key) >= 40
    assert (tmp_path / "secret_key").read_text() == key
