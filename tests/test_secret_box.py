"""Secrets at rest: sealed in the database, key generated once, legacy rows still read."""

from __future__ import annotations

import json
import multiprocessing
import stat
from pathlib import Path
from typing import Any

import attrs
import pytest
from sqlalchemy import select, update

from hma_framework.actions.handlers import handlers_of
from hma_framework.runtime import Runtime
from hma_framework.secret_box import (
    SecretBox,
    SecretsUnreadableError,
    _generated_key,
    is_sealed,
    secret_box,
)
from hma_framework.settings import Settings
from hma_framework.store.tables import HandlerConfigRow
from hma_framework.testing import Tokens

SIGNING = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="


def test_sealed_values_open_only_with_the_same_key() -> None:
    box = SecretBox("one key")
    sealed = box.seal({"api_token": "123456789|abcdefghijklmnopqrstuvwxyz"})
    assert is_sealed(sealed)
    assert "abcdefghijklmnop" not in json.dumps(sealed)
    assert box.open(sealed) == {"api_token": "123456789|abcdefghijklmnopqrstuvwxyz"}
    with pytest.raises(SecretsUnreadableError):
        SecretBox("another key").open(sealed)
    assert box.open({"legacy": "plain"}) == {"legacy": "plain"}


def _key_in(directory: str, results: Any) -> None:
    results.put(_generated_key(Path(directory)))


def test_the_generated_key_is_owner_only_and_the_same_for_racing_processes(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    racers = [context.Process(target=_key_in, args=(str(tmp_path), results)) for _ in range(4)]
    for racer in racers:
        racer.start()
    keys = {results.get(timeout=60) for _ in racers}
    for racer in racers:
        racer.join(30)
    assert len(keys) == 1
    key_file = tmp_path / "secrets_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() in keys
    assert [p.name for p in tmp_path.iterdir()] == ["secrets_key"]  # no temporary left


def test_handler_secrets_are_stored_sealed_and_still_used(
    runtime: Runtime, client: Any, tokens: Tokens
) -> None:
    response = client.post(
        "/handlers",
        json={
            "name": "hook",
            "type": "webhook",
            "config": {"url": "https://example.org/hook", "signing_secrets": [SIGNING]},
        },
        headers=tokens.header(tokens.admin),
    )
    assert response.status_code == 201, response.json
    assert response.json["secrets_set"] == ["signing_secrets"]
    with runtime.store.reading() as session:
        stored = session.scalars(select(HandlerConfigRow.secrets)).one()
    assert is_sealed(stored)
    assert "c2VjcmV0" not in json.dumps(stored)
    with runtime.store.reading() as session:
        row = session.scalars(select(HandlerConfigRow)).one()
    built = handlers_of(runtime).build(row, runtime.settings)
    assert built is not None
    assert handlers_of(runtime).secrets(row)["signing_secrets"] == [SIGNING]


def test_plain_handler_secrets_from_before_sealing_still_work_and_are_sealed_on_write(
    runtime: Runtime, client: Any, tokens: Tokens
) -> None:
    handlers = handlers_of(runtime)
    handlers.create(
        "hook", "webhook", {"url": "https://example.org/a", "signing_secrets": [SIGNING]}
    )
    with runtime.store.transaction() as session:  # as an older version stored it
        session.execute(update(HandlerConfigRow).values(secrets={"signing_secrets": [SIGNING]}))
    assert handlers.get("hook")["secrets_set"] == ["signing_secrets"]
    handlers.replace("hook", {"url": "https://example.org/b"}, enabled=None)
    with runtime.store.reading() as session:
        row = session.scalars(select(HandlerConfigRow)).one()
    assert is_sealed(row.secrets)
    assert handlers.secrets(row)["signing_secrets"] == [SIGNING]


def test_a_configured_secrets_key_is_used_instead_of_a_file(settings: Settings) -> None:
    configured = attrs.evolve(settings, secrets_key="configured key material")
    sealed = secret_box(configured).seal({"a": "b"})
    assert SecretBox("configured key material").open(sealed) == {"a": "b"}
    assert not (Path(settings.data_dir) / "secrets_key").exists()
