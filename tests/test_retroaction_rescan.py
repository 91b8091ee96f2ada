"""Full rescans: ``POST /retroaction``, its progress, ``hma retroact``, resuming a lost job."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from hma_framework.cli import cli
from hma_framework.registry import Registry
from hma_framework.retroaction import rescans
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.content_queries import ContentQueries
from hma_framework.store.tables import ContentSignalRow, RetroactionScanRow
from hma_framework.testing import run_jobs
from tests.test_actions_support import (
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


@pytest.fixture
def admin(live_server: str, runtime: Runtime) -> Api:
    return Api(live_server, runtime.api_keys.create("ops", ["admin", "read"]).token)


def age(runtime: Runtime, content_id: str, days: float) -> None:
    pk = ContentQueries(runtime.store).content_pk(content_id)
    with runtime.store.transaction() as session:
        session.execute(
            update(ContentSignalRow)
            .where(ContentSignalRow.content_pk == pk)
            .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
        )


def bank(admin: Api, name: str, value: str = PDQ) -> None:
    admin.ok("POST", "/banks", {"name": name})
    body = {"signals": [{"signal_type": "pdq", "signal_value": value}]}
    admin.ok("POST", f"/banks/{name}/members", body)


def test_a_30_day_rescan_finds_content_older_than_the_window(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(admin, "any", "hook", [{"label": "bank", "equals": "late"}])
    submit_hash(admin, "ten-days-old", PDQ)
    submit_hash(admin, "forty-days-old", PDQ)
    age(runtime, "ten-days-old", 10)
    age(runtime, "forty-days-old", 40)
    bank(admin, "late")
    run_jobs(worker_runtime)  # the automatic pass: both are outside its 72 hours
    assert receiver.received == []

    started = admin.call("POST", "/retroaction", {"since": "30d", "banks": ["late"]})
    assert started.status_code == 202, started.text
    scan = started.json()
    assert scan["state"] == "queued" and scan["total"] == 1 and scan["banks"] == ["late"]
    again = admin.call("POST", "/retroaction", {"since": "7d", "banks": ["late"]})
    assert again.status_code == 409 and f"/retroaction/{scan['id']}" in again.json()["message"]
    other_set = admin.call("POST", "/retroaction", {"since": "30d"})
    assert other_set.status_code == 202, "a different bank set may rescan at the same time"

    run_jobs(worker_runtime)
    done = admin.ok("GET", f"/retroaction/{scan['id']}")
    assert done["state"] == "done" and done["scanned"] == 1 and done["matched"] == 1
    assert [r.path for r in receiver.received] == ["/ten-days-old"]
    [match] = admin.ok("GET", "/content/ten-days-old/matches")["matches"]
    assert match["retroactive"] is True
    assert admin.ok("GET", "/content/forty-days-old/matches")["matches"] == []
    assert admin.call("POST", "/retroaction", {"since": "7d", "banks": ["late"]}).status_code == 202


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "missing required field 'since'"),
        ({"since": "yesterday"}, 400, "neither an ISO 8601 time nor a span"),
        ({"since": "1d", "until": "2d"}, 400, "since must be before until"),
        ({"since": "1d", "banks": ["nope"]}, 404, "no bank named 'nope'"),
    ],
)
def test_bad_rescan_requests(
    admin: Api, body: dict[str, object], status: int, message: str
) -> None:
    response = admin.call("POST", "/retroaction", body)
    assert response.status_code == status and message in response.json()["message"]


def test_rescan_needs_admin_and_unknown_ids_are_404(
    admin: Api, live_server: str, runtime: Runtime
) -> None:
    reader = Api(live_server, runtime.api_keys.create("r", ["read"]).token)
    assert reader.call("POST", "/retroaction", {"since": "1d"}).status_code == 403
    assert reader.call("GET", "/retroaction/999").status_code == 404


def test_a_rescan_whose_worker_died_resumes_from_its_cursor(
    admin: Api, runtime: Runtime, worker_runtime: Runtime
) -> None:
    for n in range(3):
        submit_hash(admin, f"c{n}", PDQ)
    bank(admin, "late")
    runtime.redis.flushdb()  # no automatic pass: only the rescan may match
    scan_pk = rescans.start_rescan(
        runtime, dt.datetime.now(dt.UTC) - dt.timedelta(days=1), dt.datetime.now(dt.UTC)
    )
    first = ContentQueries(runtime.store).content_pk("c0")
    with runtime.store.transaction() as session:  # a worker got past c0, then was killed
        session.execute(
            update(RetroactionScanRow)
            .where(RetroactionScanRow.id == scan_pk)
            .values(state="running", scanned=1, cursor=first)
        )
    runtime.redis.flushdb()  # ... and its job is gone
    assert rescans.resume_stalled(runtime) == 1
    assert rescans.resume_stalled(runtime) == 0, "the new job is queued"
    run_jobs(worker_runtime, ["retroact"])
    state = rescans.describe(runtime, scan_pk)
    assert state is not None and state["state"] == "done"
    assert state["scanned"] == 3 and state["total"] == 3
    queries = ContentQueries(runtime.store)
    retroactive = [m for m in queries.matches() if m["retroactive"]]
    assert sorted(m["content_id"] for m in retroactive) == ["c1", "c2"], "resumed past c0"


def test_hma_retroact_starts_and_follows_a_rescan(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, settings: Settings
) -> None:
    bank(admin, "b")
    env = {
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": settings.redis_url,
    }
    runner = CliRunner()
    result = runner.invoke(cli, ["retroact", "--since", "30d", "--bank", "b", "--no-wait"], env=env)
    assert result.exit_code == 0, result.output
    assert "started: 0 content signals" in result.output
    refused = runner.invoke(cli, ["retroact", "--since", "30d", "--bank", "b"], env=env)
    assert refused.exit_code != 0 and "still running" in refused.output
    run_jobs(worker_runtime, ["retroact"])
    unknown = runner.invoke(cli, ["retroact", "--since", "30d", "--bank", "zz"], env=env)
    assert unknown.exit_code != 0 and "no bank named 'zz'" in unknown.output
    submit_hash(admin, "recent", PDQ)
    outcome: list[Any] = []
    args = ["retroact", "--since", "1h", "--poll-seconds", "0.05"]
    command = threading.Thread(target=lambda: outcome.append(runner.invoke(cli, args, env=env)))
    command.start()  # the command waits for the rescan; a worker (here) runs it meanwhile
    deadline = time.monotonic() + 10
    while runtime.queues["retroact"].count == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    run_jobs(worker_runtime, ["retroact"])
    command.join(30)
    [followed] = outcome
    assert followed.exit_code == 0, followed.output
    assert "started: 1 content signals" in followed.output
    assert "done: scanned 1, content newly matched 0" in followed.output  # matched live
