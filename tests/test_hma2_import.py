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
from hma_framework.store.tables import ExchangeApiCredentialsRow
from hma_framework.testing import TEST_DATABASE_ENV, Tokens, run_jobs
from tests.fakes.threatexchange import APP_ID, FakeThreatExchange, Indicator, fake_threatexchange
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
    original_content_uri VARCHAR,
    bank_content_metadata JSON,
    note VARCHAR(255)
);
CREATE TABLE content_signal (
    content_id INTEGER NOT NULL REFERENCES bank_content(id) ON DELETE CASCADE,
    signal_type VARCHAR NOT NULL,
    signal_val TEXT NOT NULL,
    create_time TIMESTAMP WITH TIME ZONE DEFAULT now(),
    PRIMARY KEY (content_id, signal_type)
);
CREATE TABLE exchange_fetch_status (
    collab_id INTEGER PRIMARY KEY REFERENCES exchange(id) ON DELETE CASCADE,
    running_fetch_start_ts BIGINT,
    last_fetch_succeeded BOOLEAN,
    last_fetch_complete_ts BIGINT,
    is_up_to_date BOOLEAN NOT NULL,
    checkpoint_ts BIGINT,
    checkpoint_json JSON
);
CREATE TABLE exchange_api_config (
    id SERIAL PRIMARY KEY,
    api VARCHAR NOT NULL UNIQUE,
    default_credentials_json JSON NOT NULL
);
CREATE TABLE signal_type_override (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) UNIQUE NOT NULL,
    enabled_ratio FLOAT NOT NULL
);
"""
# HMA 2.0's per-exchange credentials (its migration b7e4c2a9d1f0), absent before it.
PER_EXCHANGE_CREDENTIALS = "ALTER TABLE exchange ADD COLUMN credentials_json JSON"
API_TOKEN = f"{APP_ID}|imported-api-level-token-secret"
OWN_TOKEN = f"{APP_ID}|imported-exchange-own-token-secret"
CHECKPOINT_UPDATE_TIME = 1_700_000_500


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
                "UPDATE bank_content SET note = 'reported by X', bank_content_metadata = :meta "
                "WHERE id = 105"
            ),
            {"meta": json.dumps({"content_id": "ext-105", "json": {"case": 7}})},
        )
        c.execute(
            text(
                "INSERT INTO exchange_fetch_status (collab_id, last_fetch_succeeded, "
                "last_fetch_complete_ts, is_up_to_date, checkpoint_ts, checkpoint_json) "
                "VALUES (1, true, 1700000600, true, :ts, :checkpoint)"
            ),
            {
                "ts": CHECKPOINT_UPDATE_TIME,
                "checkpoint": json.dumps(
                    {"update_time": CHECKPOINT_UPDATE_TIME, "last_fetch_time": 1_700_000_600}
                ),
            },
        )
        c.execute(
            text(
                "INSERT INTO exchange_api_config (api, default_credentials_json) VALUES "
                "('fb_threatexchange', :creds), ('ncmec', '{}'), ('not_installed', :other)"
            ),
            {
                "creds": json.dumps({"api_token": API_TOKEN}),
                "other": json.dumps({"key": "not-installed-secret"}),
            },
        )
        c.execute(
            text(
                "INSERT INTO signal_type_override (name, enabled_ratio) VALUES "
                "('pdq', 0.5), ('tlsh', 1.0)"
            )
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
    assert (
        "credentials of 1 API(s) and 0 exchange(s) (sealed), 1 fetch checkpoint(s), "
        "1 signal type ratio(s)" in result.output
    )
    assert "note: API not_installed: not installed here" in result.output
    for secret in (API_TOKEN, "not-installed-secret"):
        assert secret.split("|")[-1] not in result.output

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
    assert client.get("/c/bank/TX_SHARED/content/104", **api).get_json()["metadata"] == {
        "content_id": None,
        "content_uri": None,
        "json": None,
        "collab": {"TX_SHARED": ["te-123"]},
    }
    noted = client.get("/c/bank/LOCAL_BANK/content/105", **api).get_json()
    assert noted["note"] == "reported by X"
    assert noted["metadata"] == {
        "content_id": "ext-105",
        "content_uri": None,
        "json": {"case": 7},
        "collab": None,
    }
    assert {"name": "pdq", "enabled_ratio": 0.5} in client.get("/c/signal_type", **api).get_json()

    # The exchange: its config without the fields HMA 2.0 repeats, the API's shared
    # credentials (sealed), and its checkpoint.
    exchange = client.get("/c/exchange/TX_SHARED", **api).get_json()
    assert exchange == {
        "name": "TX_SHARED",
        "api": "fb_threatexchange",
        "enabled": False,
        "privacy_group": 1012,
        "credential_status": {"supports_auth": True, "has_credentials": True, "source": "api"},
    }
    status = client.get("/c/exchange/TX_SHARED/status", **api).get_json()
    assert status["checkpoint_ts"] == CHECKPOINT_UPDATE_TIME and status["up_to_date"] is True
    assert status["last_fetch_complete_ts"] == 1_700_000_600
    with runtime.store.reading() as session:
        sealed = session.get(ExchangeApiCredentialsRow, "fb_threatexchange")
        assert sealed is not None and set(sealed.credentials) == {"sealed"}
        assert session.get(ExchangeApiCredentialsRow, "ncmec") is None

    # New members after the import get fresh ids past the kept ones.
    added = client.post("/c/bank/LOCAL_BANK/signal", json={"pdq": flip(PDQ, 50, seed=9)}, **api)
    assert added.get_json()["id"] > 107

    # Running it again writes nothing.
    again = CliRunner().invoke(cli, ["import-hma2", hma2_url], env=env)
    assert (
        again.exit_code == 1 and "already here, nothing imported: bank LOCAL_BANK" in again.output
    )


def test_imported_exchange_resumes_from_its_checkpoint_with_its_own_credentials(
    hma2_url: str, runtime: Runtime, client: Any, tokens: Tokens
) -> None:
    """HMA 2.0 with per-exchange credentials: the exchange's own win over the API's, and its
    first fetch here starts at HMA 2.0's checkpoint, not from the beginning."""
    engine = create_engine(hma2_url)
    with engine.begin() as connection:
        connection.execute(text(PER_EXCHANGE_CREDENTIALS))
    engine.dispose()
    _seed(hma2_url)
    engine = create_engine(hma2_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE exchange SET credentials_json = :creds WHERE id = 1"),
            {"creds": json.dumps({"api_token": OWN_TOKEN})},
        )
    engine.dispose()
    env = {
        "HMA_DATABASE_URL": runtime.settings.database_url,
        "HMA_DATA_DIR": runtime.settings.data_dir,
    }
    result = CliRunner().invoke(cli, ["import-hma2", hma2_url], env=env)
    assert result.exit_code == 0, result.output
    assert "credentials of 1 API(s) and 1 exchange(s) (sealed)" in result.output
    assert OWN_TOKEN.split("|")[1] not in result.output

    admin = {"headers": Tokens.header(tokens.admin)}
    shown = client.get("/c/exchange/TX_SHARED/credentials", **admin).get_json()
    assert shown == {"supports_auth": True, "has_credentials": True, "source": "exchange"}
    with fake_threatexchange(FakeThreatExchange(privacy_group=1012, token=OWN_TOKEN)) as fake:
        fake.add(Indicator(flip(PDQ, 60, seed=11), last_updated=CHECKPOINT_UPDATE_TIME + 5))
        config = {"privacy_group": 1012, "base_url": fake.base_url}
        patched = client.patch("/exchanges/TX_SHARED", json={"config": config}, **admin)
        assert patched.status_code == 200, patched.get_json()
        assert client.post("/exchanges/TX_SHARED/fetch", **admin).status_code == 202
        run_jobs(runtime, ["fetch"])
        assert fake.requests, "no fetch reached the fake"
        assert fake.requests[0]["query"]["access_token"] == OWN_TOKEN
        assert fake.requests[0]["query"]["start_time"] == str(CHECKPOINT_UPDATE_TIME)
    status = client.get("/c/exchange/TX_SHARED/status", **admin).get_json()
    assert status["last_fetch_succeeded"] is True and status["fetched_items"] == 2


def test_import_refuses_a_database_that_is_not_hma2(runtime: Runtime, tmp_path: Any) -> None:
    env = {
        "HMA_DATABASE_URL": runtime.settings.database_url,
        "HMA_DATA_DIR": runtime.settings.data_dir,
    }
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = CliRunner().invoke(cli, ["import-hma2", empty], env=env)
    assert result.exit_code == 1 and "not an HMA 2.0 database" in result.output
