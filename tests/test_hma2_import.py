"""`hma import-hma2`: an HMA 2.0 PostgreSQL database (seeded with its models' table layout)
moves over with its banks, contents, signals and exchange configs, and its hashes match."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hma_framework.cli import cli
from hma_framework.runtime import Runtime
from hma_framework.store.bank_queries import BankQueries
from hma_framework.testing import TEST_DATABASE_ENV, Tokens
from tests.test_compat_hma2_matching import flip

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"

# HMA 2.0's tables as OpenMediaMatch/storage/postgres/database.py declares them (the columns
# the import reads, with their types and keys).
HMA2_SCHEMA = """
CREATE TABLE exchange (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) UNIQUE NOT NULL,
    api_cls VARCHAR(255) NOT NULL,
    retain_api_data BOOLEAN NOT NULL DEFAULT false,
    fetching_enabled BOOLEAN NOT NULL DEFAULT true,
    retain_data_with_unknown_signal_types BOOLEAN NOT NULL DEFAULT false,
    typed_config JSON NOT NULL
);
CREATE TABLE bank (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) UNIQUE NOT NULL,
    enabled_ratio FLOAT NOT NULL DEFAULT 1.0,
    import_from_exchange_id INTEGER UNIQUE REFERENCES exchange(id) ON DELETE CASCADE
);
CREATE TABLE exchange_data (
    id SERIAL PRIMARY KEY,
    collab_id INTEGER NOT NULL REFERENCES exchange(id) ON DELETE CASCADE,
    fetch_id TEXT NOT NULL,
    pickled_fetch_signal_metadata BYTEA,
    fetched_metadata_summary JSON NOT NULL DEFAULT '[]',
    matched BOOLEAN NOT NULL DEFAULT false,
    verification_result BOOLEAN,
    UNIQUE (collab_id, fetch_id)
);
CREATE TABLE bank_content (
    id SERIAL PRIMARY KEY,
    bank_id INTEGER NOT NULL REFERENCES bank(id) ON DELETE CASCADE,
    imported_from_id INTEGER UNIQUE REFERENCES exchange_data(id) ON DELETE CASCADE,
    disable_until_ts INTEGER NOT NULL DEFAULT 1,
    original_content_uri VARCHAR
);
CREATE TABLE content_signal (
    content_id INTEGER NOT NULL REFERENCES bank_content(id) ON DELETE CASCADE,
    signal_type VARCHAR NOT NULL,
    signal_val TEXT NOT NULL,
    create_time TIMESTAMP WITH TIME ZONE DEFAULT now(),
    PRIMARY KEY (content_id, signal_type)
);
"""


@pytest.fixture
def hma2_url() -> Iterator[str]:
    base_url = os.environ.get(TEST_DATABASE_ENV)
    if not base_url:
        pytest.skip(f"needs PostgreSQL ({TEST_DATABASE_ENV}): HMA 2.0 runs on PostgreSQL only")
    schema = f"hma2_{secrets.token_hex(6)}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    engine = create_engine(rendered)
    with engine.begin() as connection:
        for statement in HMA2_SCHEMA.split(";"):
            if statement.strip():
                connection.execute(text(statement))
    engine.dispose()
    try:
        yield rendered
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _seed(url: str) -> dict[str, Any]:
    later = int(time.time()) + 86400
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO exchange (id, name, api_cls, fetching_enabled, typed_config) VALUES "
                "(1, 'TX_SHARED', 'fb_threatexchange', false, :cfg)"
            ),
            {
                "cfg": json.dumps(
                    {
                        "name": "TX_SHARED",
                        "api": "fb_threatexchange",
                        "enabled": False,
                        "privacy_group": 1012,
                    }
                )
            },
        )
        c.execute(
            text(
                "INSERT INTO bank (id, name, enabled_ratio, import_from_exchange_id) VALUES "
                "(1, 'LOCAL_BANK', 1.0, NULL), (2, 'SAMPLED', 0.25, NULL), "
                "(3, 'TX_SHARED', 1.0, 1), (4, 'OFF_BANK', 0.0, NULL)"
            )
        )
        c.execute(
            text("INSERT INTO exchange_data (id, collab_id, fetch_id) VALUES (1, 1, 'te-123')")
        )
        c.execute(
            text(
                "INSERT INTO bank_content (id, bank_id, imported_from_id, disable_until_ts, "
                "original_content_uri) VALUES "
                "(101, 1, NULL, 1, 'https://x.test/a.jpg'), (102, 1, NULL, 0, NULL), "
                "(103, 2, NULL, :later, NULL), (104, 3, 1, 1, NULL), (105, 1, NULL, 1, NULL), "
                "(106, 1, NULL, 1, NULL), (107, 4, NULL, 1, NULL)"
            ),
            {"later": later},
        )
        c.execute(
            text(
                "INSERT INTO content_signal (content_id, signal_type, signal_val) VALUES "
                "(101, 'pdq', :a), (101, 'video_md5', :md5), (102, 'pdq', :b), (103, 'pdq', :c), "
                "(104, 'pdq', :d), (105, 'pdq', :a), (106, 'tlsh', 'T1abc'), (107, 'pdq', :e)"
            ),
            {
                "a": PDQ,
                "md5": MD5,
                "b": flip(PDQ, 80, seed=1),
                "c": flip(PDQ, 80, seed=2),
                "d": flip(PDQ, 80, seed=3),
                "e": flip(PDQ, 80, seed=4),
            },
        )
    engine.dispose()
    return {"later": later}


def test_import_moves_banks_contents_signals_and_exchanges(
    hma2_url: str, runtime: Runtime, client: Any, tokens: Tokens
) -> None:
    seeded = _seed(hma2_url)
    env = {
        "HMA_DATABASE_URL": runtime.settings.database_url,
        "HMA_DATA_DIR": runtime.settings.data_dir,
    }
    result = CliRunner().invoke(cli, ["import-hma2", hma2_url], env=env)
    assert result.exit_code == 0, result.output
    assert (
        "imported 4 bank(s), 6 content(s) with 7 signal(s), 1 exchange config(s)" in result.output
    )
    assert (
        "skipped 1 signal(s) (tlsh: unknown type x1); 1 content(s) had no usable signal"
        in result.output
    )

    queries = BankQueries(runtime.store)
    banks = {b["name"]: b for b in queries.banks()}
    assert banks["SAMPLED"]["matching_enabled_ratio"] == 0.25 and banks["SAMPLED"]["enabled"]
    assert banks["OFF_BANK"]["enabled"] is False
    assert banks["TX_SHARED"]["exchange"] == "TX_SHARED"
    local = {m["id"]: m for m in queries.members("LOCAL_BANK")}
    assert sorted(local) == [101, 102, 105]  # HMA 2.0's ids kept
    assert local[101]["signals"] == [
        {"signal_type": "pdq", "signal_value": PDQ},
        {"signal_type": "video_md5", "signal_value": MD5},
    ]
    assert local[102]["enabled"] is False
    assert queries.members("TX_SHARED")[0]["exchange_metadata"] is None

    api = {"headers": Tokens.header(tokens.admin)}
    # The imported hashes match, under the same content ids.
    found = client.get("/m/lookup", query_string={"signal_type": "pdq", "signal": PDQ}, **api)
    assert found.get_json() == {
        "LOCAL_BANK": [
            {"bank_content_id": 101, "distance": "0"},
            {"bank_content_id": 105, "distance": "0"},
        ]
    }
    md5 = client.get(
        "/m/raw_lookup", query_string={"signal_type": "video_md5", "signal": MD5}, **api
    )
    assert md5.get_json() == {"matches": [101]}
    for signal, content_id in [(flip(PDQ, 80, seed=3), 104)]:
        raw = client.get(
            "/m/raw_lookup", query_string={"signal_type": "pdq", "signal": signal}, **api
        )
        assert raw.get_json() == {"matches": [content_id]}
    # Switched off (0), disabled until tomorrow, and in a bank with ratio 0: no match.
    for seed in (1, 2, 4):
        raw = client.get(
            "/m/raw_lookup",
            query_string={"signal_type": "pdq", "signal": flip(PDQ, 80, seed=seed)},
            **api,
        )
        assert raw.get_json() == {"matches": []}, seed
    content = client.get("/c/bank/SAMPLED/content/103", **api).get_json()
    assert content["disable_until_ts"] == seeded["later"]
    assert (
        client.get("/c/bank/LOCAL_BANK/content/101", **api).get_json()["original_media_uri"]
        == "https://x.test/a.jpg"
    )
    assert client.get("/c/bank/TX_SHARED/content/104", **api).get_json()["collab_metadata"] == {
        "TX_SHARED": ["te-123"]
    }

    # New members after the import get fresh ids past the kept ones.
    added = client.post("/c/bank/LOCAL_BANK/signal", json={"pdq": flip(PDQ, 50, seed=9)}, **api)
    assert added.get_json()["id"] > 107

    # Running it again writes nothing.
    again = CliRunner().invoke(cli, ["import-hma2", hma2_url], env=env)
    assert (
        again.exit_code == 1 and "already here, nothing imported: bank LOCAL_BANK" in again.output
    )


def test_import_refuses_a_database_that_is_not_hma2(runtime: Runtime, tmp_path: Any) -> None:
    env = {
        "HMA_DATABASE_URL": runtime.settings.database_url,
        "HMA_DATA_DIR": runtime.settings.data_dir,
    }
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = CliRunner().invoke(cli, ["import-hma2", empty], env=env)
    assert result.exit_code == 1 and "not an HMA 2.0 database" in result.output
