"""CLI commands run as a new user would, in a folder where `hma serve` never ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _hma(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    return subprocess.run(
        [sys.executable, "-m", "hma_framework", *args],
        cwd=folder,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_list_and_bank_import_on_the_embedded_default_migrate_it(tmp_path: Path) -> None:
    listed = _hma(tmp_path, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    members = tmp_path / "members.csv"
    members.write_text("signal_type,signal_value\nvideo_md5,d41d8cd98f00b204e9800998ecf8427e\n")
    imported = _hma(tmp_path, "banks", "import", "known", str(members), "--create")
    assert imported.returncode == 0, imported.stderr
    assert "added 1 member(s) to known" in imported.stdout
    current = _hma(tmp_path, "db", "current")
    assert "up to date" in current.stdout


def test_a_configured_database_is_not_migrated_behind_the_operators_back(tmp_path: Path) -> None:
    database = tmp_path / "configured.sqlite3"
    url = f"sqlite:///{database}"
    for args in (("keys", "list"), ("banks", "import", "b", "-", "--create"), ("db", "current")):
        result = _hma(tmp_path, *args, HMA_DATABASE_URL=url)
        assert "Traceback" not in result.stderr, result.stderr
        if args[0] != "db":
            assert result.returncode == 1
            assert "run `hma db upgrade` first" in result.stderr
    assert not database.exists(), "no stray empty database file"
    assert _hma(tmp_path, "db", "upgrade", HMA_DATABASE_URL=url).returncode == 0
    assert _hma(tmp_path, "keys", "list", HMA_DATABASE_URL=url).returncode == 0
