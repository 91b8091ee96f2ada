"""The hma command line: help everywhere, db, keys, settings."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from hma_framework.cli import cli, mask_password


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_every_command_has_help() -> None:
    runner = CliRunner()
    paths = list(_commands(cli))
    assert {("serve",), ("worker",), ("scheduler",), ("db",), ("keys",), ("plugins",)} <= {
        p for p in paths
    }
    for path in [(), *paths]:
        result = runner.invoke(cli, [*path, "--help"], env={})
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: " in result.output
        command: click.Command = cli
        for part in path:
            assert isinstance(command, click.Group)
            command = command.commands[part]
        assert command.help, f"hma {' '.join(path)} has no help text"


@pytest.fixture
def cli_env(database_url: str, tmp_path: object) -> dict[str, str]:
    return {"HMA_DATABASE_URL": database_url, "HMA_DATA_DIR": str(tmp_path)}


def test_db_and_keys_lifecycle(cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    current = runner.invoke(cli, ["db", "current"], env=cli_env)
    assert current.exit_code == 0 and "empty: behind" in current.output
    upgraded = runner.invoke(cli, ["db", "upgrade"], env=cli_env)
    assert upgraded.exit_code == 0, upgraded.output
    assert "up to date" in runner.invoke(cli, ["db", "current"], env=cli_env).output

    created = runner.invoke(
        cli,
        ["keys", "create", "--name", "moderation tool", "--scope", "read", "--scope", "submit"],
        env=cli_env,
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    key_id = token.split("_")[1]
    listing = runner.invoke(cli, ["keys", "list"], env=cli_env).output
    assert key_id in listing and "moderation tool" in listing and "read,submit" in listing
    assert token not in listing

    assert runner.invoke(cli, ["keys", "revoke", key_id], env=cli_env).exit_code == 0
    assert key_id not in runner.invoke(cli, ["keys", "list"], env=cli_env).output
    assert "revoked" in runner.invoke(cli, ["keys", "list", "--all"], env=cli_env).output
    again = runner.invoke(cli, ["keys", "revoke", key_id], env=cli_env)
    assert again.exit_code == 1 and "no live key" in again.output


def test_unknown_scope_is_refused() -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "--name", "x", "--scope", "god"], env={})
    assert result.exit_code == 2 and "god" in result.output


def test_bad_setting_stops_every_command_naming_the_key() -> None:
    result = CliRunner().invoke(cli, ["plugins"], env={"HMA_WEB_PORT": "http"})
    assert result.exit_code == 1
    assert "HMA_WEB_PORT (web.port): expected an integer, got 'http'" in result.output


def test_worker_without_redis_explains_what_to_set(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["worker", "--burst"], env={**cli_env, "HMA_REDIS_URL": ""})
    assert result.exit_code == 1 and "HMA_REDIS_URL" in result.output


def test_settings_masks_passwords() -> None:
    result = CliRunner().invoke(
        cli, ["settings"], env={"HMA_DATABASE_URL": "postgresql://hma:s3cret@db/hma"}
    )
    assert result.exit_code == 0
    assert "HMA_DATABASE_URL=postgresql://hma:***@db/hma" in result.output
    assert "s3cret" not in result.output
    assert mask_password("redis://host:6379/0") == "redis://host:6379/0"
