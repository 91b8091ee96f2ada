"""``GET /stats`` and ``hma stats``: figures per interval and bank, from the records."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from hma_framework.cli import cli
from hma_framework.registry import Registry
from hma_framework.retroaction.automatic import run_pass
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.content_queries import ContentQueries
from hma_framework.testing import run_jobs
from tests.test_actions_support import (
    OTHER_PDQ,
    PDQ,
    Api,
    Receiver,
    new_secret,
    quick_retries,
    registry_with_webhook,
    rule,
    submit_hash,
    webhook_handler,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quick_retries(settings)


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


def test_stats_count_submissions_matches_and_actions_per_interval_and_bank(
    live_server: str,
    runtime: Runtime,
    worker_runtime: Runtime,
    receiver: Receiver,
    settings: Settings,
) -> None:
    admin = Api(live_server, runtime.api_keys.create("ops", ["admin", "read"]).token)
    banks = Banks(runtime.store)
    banks.create_bank("known")
    banks.add_member("known", NewMember(signals=(("pdq", PDQ),)))
    run_pass(runtime)  # nothing submitted yet: moves the cursor past "known"
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(admin, "known", "hook", [{"label": "bank", "equals": "known"}])
    submit_hash(admin, "live", PDQ)
    submit_hash(admin, "later", OTHER_PDQ)
    submit_hash(admin, "plain", "0" * 64)
    submit_hash(admin, "broken", "1" * 64)
    assert admin.post("/submit/hash/", {"content_id": "broken"}).status_code == 400
    broken = ContentQueries(runtime.store).content_pk("broken")
    assert broken is not None
    runtime.content.mark_failed(broken, "for the statistics")
    run_jobs(worker_runtime)
    banks.create_bank("late")
    banks.add_member("late", NewMember(signals=(("pdq", OTHER_PDQ),)))
    assert run_pass(runtime)["matched_content"] == 1

    body = admin.ok("GET", "/stats", since="1h", interval="hour")
    assert body["interval"] == "hour"
    [bucket] = body["intervals"]
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    assert bucket["start"] in (hour.isoformat(), (hour - dt.timedelta(hours=1)).isoformat())
    assert bucket["submissions"] == 4 and bucket["content"] == 4
    assert bucket["hashed"] == 4 and bucket["failed"] == 1
    assert bucket["matched_live"] == 1 and bucket["matched_retroactive"] == 1
    assert bucket["actions_delivered"] == 1
    assert bucket["banks"] == {
        "known": {"matched_live": 1, "matched_retroactive": 0},
        "late": {"matched_live": 0, "matched_retroactive": 1},
    }
    [day] = admin.ok("GET", "/stats", since="2d", interval="day")["intervals"]
    assert day["submissions"] == 4 and day["start"].endswith("T00:00:00+00:00")
    assert admin.ok("GET", "/stats", since="3d", until="2d")["intervals"] == []

    env = {"HMA_DATA_DIR": settings.data_dir, "HMA_DATABASE_URL": settings.database_url}
    result = CliRunner().invoke(cli, ["stats", "--since", "1h", "--by-bank"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[-6:] == [
        "submitted", "hashed", "failed", "matched", "retroactive", "actioned",
    ]  # fmt: skip
    assert lines[-1].split() == ["total", "4", "4", "1", "1", "1", "1"]
    assert any(line.split() == ["late", "0", "1"] for line in lines)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"interval": "week"}, "interval must be one of hour, day"),
        ({"since": "soon"}, "neither an ISO 8601 time"),
        ({"since": "1h", "until": "2h"}, "since must be before until"),
        ({"since": "365d", "interval": "hour"}, "use interval=day"),
    ],
)
def test_bad_stats_queries(
    live_server: str, runtime: Runtime, query: dict[str, str], message: str
) -> None:
    reader = Api(live_server, runtime.api_keys.create("r", ["read"]).token)
    response = reader.call("GET", "/stats", **query)
    assert response.status_code == 400 and message in response.json()["message"]
    submitter = Api(live_server, runtime.api_keys.create("s", ["submit"]).token)
    assert submitter.call("GET", "/stats").status_code == 403
