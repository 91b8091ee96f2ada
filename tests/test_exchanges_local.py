"""local_file: confined to the file root; each fetch is the whole list; schedule and CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from hma_framework.cli import cli
from hma_framework.exchanges import fetching
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.testing import Tokens, run_jobs


def pdq(i: int) -> str:
    return hashlib.sha256(f"local {i}".encode()).hexdigest()


def file_root(settings: Settings) -> Path:
    root = settings.exchange_file_root
    root.mkdir(parents=True, exist_ok=True)
    return root


def create(client: Any, tokens: Tokens, filename: str, name: str = "local") -> Any:
    return client.post(
        "/exchanges",
        json={"name": name, "api": "local_file", "config": {"filename": filename}},
        headers=tokens.header(tokens.admin),
    )


def test_files_outside_the_root_are_refused(
    settings: Settings, client: Any, tokens: Tokens, tmp_path: Path
) -> None:
    root = file_root(settings)
    outside = tmp_path / "outside.txt"
    outside.write_text(f"pdq {pdq(1)}\n")
    (root / "sneaky.txt").symlink_to(outside)
    for filename in ("/etc/passwd", "../outside.txt", str(outside), "sneaky.txt"):
        refused = create(client, tokens, filename)
        assert refused.status_code == 400, (filename, refused.json)
        assert "outside the exchange file root" in refused.json["message"]


def test_a_symlink_swapped_in_after_configuration_is_refused_at_fetch(
    runtime: Runtime, client: Any, tokens: Tokens, tmp_path: Path
) -> None:
    root = file_root(runtime.settings)
    (root / "list.txt").write_text(f"pdq {pdq(1)}\n")
    assert create(client, tokens, "list.txt").status_code == 201
    (tmp_path / "secret.txt").write_text("pdq " + pdq(2) + "\n")
    (root / "list.txt").unlink()
    (root / "list.txt").symlink_to(tmp_path / "secret.txt")
    client.post("/exchanges/local/fetch", headers=tokens.header(tokens.admin))
    run_jobs(runtime, ["fetch"])
    status = client.get("/exchanges/local/status", headers=tokens.header(tokens.admin)).json
    assert status["state"] == "failed" and "outside" in status["last_error"]


def test_each_fetch_mirrors_the_file_and_the_scheduler_starts_it(
    runtime: Runtime, client: Any, tokens: Tokens
) -> None:
    root = file_root(runtime.settings)
    listing = root / "list.txt"
    listing.write_text("".join(f"pdq {pdq(i)}\n" for i in range(4)) + "unknown_type abc\n")
    assert create(client, tokens, "list.txt").status_code == 201
    runtime.queues["maintenance"].enqueue(fetching.enqueue_due_fetches)
    run_jobs(runtime, ["maintenance", "fetch"])  # the tick enqueues the due fetch
    status = client.get("/exchanges/local/status", headers=tokens.header(tokens.admin)).json
    assert status["items_added"] == 4 and status["items_skipped"] == 1, status
    listing.write_text("".join(f"pdq {pdq(i)}\n" for i in (0, 1, 3)))
    # Not due again yet: the interval has not passed.
    runtime.queues["maintenance"].enqueue(fetching.enqueue_due_fetches)
    run_jobs(runtime, ["maintenance", "fetch"])
    assert (
        client.get("/exchanges/local/status", headers=tokens.header(tokens.admin)).json[
            "items_added"
        ]
        == 4
    )
    client.post("/exchanges/local/fetch", headers=tokens.header(tokens.admin))
    run_jobs(runtime, ["fetch"])
    status = client.get("/exchanges/local/status", headers=tokens.header(tokens.admin)).json
    assert status["items_deleted"] == 1 and status["items_updated"] == 3, status
    read = tokens.header(tokens.read)
    assert (
        client.get(f"/lookup?signal_type=pdq&signal={pdq(2)}", headers=read).json["matches"] == []
    )
    found = client.get(f"/lookup?signal_type=pdq&signal={pdq(3)}", headers=read).json
    assert found["matches"][0]["exchange"]["name"] == "local"


def test_the_cli_adds_fetches_shows_and_removes_an_exchange(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    root = file_root(settings)
    (root / "cli.txt").write_text(f"pdq {pdq(9)}\n")
    env = {
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": settings.redis_url,
    }
    runner = CliRunner()
    added = runner.invoke(
        cli,
        [
            "exchanges",
            "add",
            "viacli",
            "--api",
            "local_file",
            "--config",
            '{"filename": "cli.txt"}',
        ],
        env=env,
    )
    assert added.exit_code == 0, added.output
    assert "fills bank VIACLI" in added.output
    bad = runner.invoke(
        cli, ["exchanges", "add", "x", "--api", "local_file", "--config", "{}"], env=env
    )
    assert bad.exit_code != 0 and "config.filename" in bad.output
    fetched = runner.invoke(cli, ["exchanges", "fetch", "viacli", "--wait"], env=env)
    assert fetched.exit_code == 0 and "fetched" in fetched.output, fetched.output
    status = runner.invoke(cli, ["exchanges", "status", "viacli"], env=env)
    assert json.loads(status.output)["items_added"] == 1
    listed = runner.invoke(cli, ["exchanges", "list"], env=env)
    assert "viacli\tlocal_file\tbank VIACLI\tenabled" in listed.output
    removed = runner.invoke(cli, ["exchanges", "remove", "viacli", "--delete-bank"], env=env)
    assert removed.exit_code == 0, removed.output
    missing = runner.invoke(cli, ["exchanges", "status", "viacli"], env=env)
    assert missing.exit_code != 0 and "no exchange named" in missing.output
