"""Imports over HTTP and from the CLI: hostile rows are reported per line, limits before writes."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import requests
from click.testing import CliRunner

from hma_framework.cli import cli
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks
from hma_framework.testing import Tokens

BODY_LIMIT = 600_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A body limit above one import batch (5,000 rows) and below two."""
    return attrs.evolve(settings, web=attrs.evolve(settings.web, max_body_bytes=BODY_LIMIT))


def _member_count(runtime: Runtime, bank: str) -> int:
    found = BankQueries(runtime.store).bank(bank)
    assert found is not None
    return int(found["member_count"])


def _ndjson_rows(count: int, seed: int = 1) -> Iterator[bytes]:
    rng = random.Random(seed)
    for i in range(count):
        row = {"signal_type": "pdq", "signal_value": f"{rng.getrandbits(256):064x}", "notes": i}
        yield (json.dumps({**row, "notes": f"n{i}"}) + "\n").encode()


def test_http_import_over_the_limit_writes_nothing(
    live_server: str, runtime: Runtime, tokens: Tokens
) -> None:
    Banks(runtime.store).create_bank("big")
    body = list(_ndjson_rows(12_000))  # about twice the limit, sent chunked (no length)
    assert sum(map(len, body)) > BODY_LIMIT
    response = requests.post(
        f"{live_server}/banks/big/import",
        data=iter(body),
        headers=Tokens.header(tokens.admin),
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert "nothing was imported" in response.json()["message"]
    assert _member_count(runtime, "big") == 0

    small = b"".join(_ndjson_rows(100, seed=2))
    accepted = requests.post(
        f"{live_server}/banks/big/import",
        data=iter([small]),
        headers=Tokens.header(tokens.admin),
        timeout=30,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["added"] == 100 == _member_count(runtime, "big")


def test_http_import_reports_hostile_lines(
    live_server: str, runtime: Runtime, tokens: Tokens
) -> None:
    Banks(runtime.store).create_bank("b")
    good = next(_ndjson_rows(1))
    body = b"".join(
        [
            good,
            b'{"signal_type": "pdq", "signal_value": ' + b"[" * 10_000 + b"]" * 10_000 + b"}\n",
            b'{"signal_type": "pdq", "notes": ' + b"9" * 5000 + b"}\n",
            b'{"signal_type": "pdq", "notes": "\xff\xfe"}\n',
        ]
    )
    for strict in ("false", "true"):
        response = requests.post(
            f"{live_server}/banks/b/import?strict={strict}",
            data=body,
            headers=Tokens.header(tokens.admin),
            timeout=30,
        )
        assert response.status_code == (400 if strict == "true" else 200), response.text
        report = response.json()
        assert report["invalid"] == 3
        assert [e["line"] for e in report["errors"]] == [2, 3, 4]
        assert "nested more than" in report["errors"][0]["message"]
        assert "digits" in report["errors"][1]["message"]
        assert "UTF-8" in report["errors"][2]["message"]
    assert _member_count(runtime, "b") == 1


def _cli_env(runtime: Runtime) -> dict[str, str]:
    return {
        "HMA_DATABASE_URL": runtime.settings.database_url,
        "HMA_DATA_DIR": runtime.settings.data_dir,
    }


def test_cli_csv_import_reports_huge_fields_and_bad_utf8_per_line(
    runtime: Runtime, tmp_path: Path
) -> None:
    source = tmp_path / "hostile.csv"
    source.write_bytes(
        b"signal_type,signal_value,tags,notes,content_id\r\n"
        + b"pdq,"
        + b"f" * 64
        + b",,ok,c1\r\n"  # line 2
        + b"pdq,"
        + b"e" * 64
        + b',,"'
        + b"x" * 140_000
        + b'",c2\r\n'  # line 3: huge
        + b"pdq,"
        + b"d" * 64
        + b",,caf\xe9,c3\r\n"  # line 4: latin-1, not UTF-8
        + b"pdq,"
        + b"c" * 64
        + b",,fine,c4\r\n"  # line 5
    )
    result = CliRunner().invoke(
        cli, ["banks", "import", "k", str(source), "--create"], env=_cli_env(runtime)
    )
    assert result.exit_code == 0, result.output
    assert "line 3: not a valid CSV row: field larger than field limit" in result.output
    assert "line 4: not valid UTF-8" in result.output
    assert "added 2 member(s) to k; skipped 2 invalid" in result.output
    assert _member_count(runtime, "k") == 2


def test_cli_ndjson_import_reports_nesting_and_bad_utf8_per_line(
    runtime: Runtime, tmp_path: Path
) -> None:
    source = tmp_path / "hostile.ndjson"
    good = next(_ndjson_rows(1))
    source.write_bytes(
        good
        + b"[" * 100_000
        + b"]" * 100_000
        + b"\n"
        + b'{"signal_type": "pdq", "notes": "\xc3\x28"}\n'
        + b'{"signal_type": "pdq", "signal_value": '
        + b"7" * 4400
        + b"}\n"
    )
    runner = CliRunner()
    strict = runner.invoke(
        cli, ["banks", "import", "n", str(source), "--create", "--strict"], env=_cli_env(runtime)
    )
    assert strict.exit_code == 1 and "3 invalid row(s)" in strict.output, strict.output
    result = runner.invoke(cli, ["banks", "import", "n", str(source)], env=_cli_env(runtime))
    assert result.exit_code == 0, result.output
    assert "line 2: nested more than" in result.output
    assert "line 3: not valid UTF-8" in result.output
    assert "line 4: not valid JSON" in result.output
    assert "added 1 member(s) to n; skipped 3 invalid" in result.output
