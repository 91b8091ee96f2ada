"""`hma banks import` / `export`: CSV and NDJSON, line-numbered errors, strict mode."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from click.testing import CliRunner

from hma_framework.cli import cli
from hma_framework.runtime import Runtime
from hma_framework.store.bank_queries import BankQueries


def test_csv_round_trip_with_invalid_rows(runtime: Runtime, tmp_path: Path) -> None:
    env = {
        "HMA_DATABASE_URL": runtime.settings.database_url,
        "HMA_DATA_DIR": runtime.settings.data_dir,
    }
    rng = random.Random(3)
    source = tmp_path / "hashes.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["signal_type", "signal_value", "tags", "notes", "content_id"])
        for i in range(2500):
            writer.writerow(["pdq", f"{rng.getrandbits(256):064x}", "a;b", f"note {i}", f"c{i}"])
        writer.writerow(["pdq", "not-a-hash", "", "", ""])  # line 2502
        writer.writerow(["sha1", "abc", "", "", ""])  # line 2503
        writer.writerow(["video_md5", "d" * 32, "", "", ""])
    runner = CliRunner()
    refused = runner.invoke(
        cli, ["banks", "import", "known", str(source), "--create", "--strict"], env=env
    )
    assert refused.exit_code == 1, refused.output
    assert "line 2502:" in refused.output and "line 2503:" in refused.output
    assert BankQueries(runtime.store).bank("known")["member_count"] == 0  # type: ignore[index]

    result = runner.invoke(cli, ["banks", "import", "known", str(source)], env=env)
    assert result.exit_code == 0, result.output
    assert "added 2501 member(s) to known; skipped 2 invalid" in result.output
    assert "line 2502: not a valid pdq hash" in result.output

    exported = tmp_path / "out.csv"
    result = runner.invoke(
        cli, ["banks", "export", "known", "--format", "csv", "-o", str(exported)], env=env
    )
    assert result.exit_code == 0, result.output
    original = [
        r
        for r in csv.DictReader(source.open(newline=""))
        if r["signal_value"] not in ("not-a-hash", "abc")
    ]
    round_trip = list(csv.DictReader(exported.open(newline="")))
    key = lambda r: r["signal_value"]  # noqa: E731
    assert sorted(round_trip, key=key) == sorted(original, key=key)

    again = tmp_path / "again.ndjson"
    runner.invoke(cli, ["banks", "export", "known", "-o", str(again)], env=env)
    result = runner.invoke(cli, ["banks", "import", "copy", str(again), "--create"], env=env)
    assert "added 2501 member(s) to copy" in result.output
    missing = runner.invoke(cli, ["banks", "import", "nope", str(again)], env=env)
    assert missing.exit_code == 1 and "no bank named 'nope'" in missing.output
