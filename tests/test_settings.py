"""Settings from the environment and a TOML file, with errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hma_framework.settings import Settings, SettingsError, load_settings


def test_defaults_need_no_configuration() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.web.port == 5000 and settings.web.host == "127.0.0.1"
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("hma-data/hma.sqlite3")


def test_environment_variables_set_nested_fields() -> None:
    settings = load_settings(
        environ={
            "HMA_WEB_PORT": "8080",
            "HMA_PLUGINS_BLOCKED": "hma_s3_source, other",
            "HMA_PLUGINS_STRICT": "yes",
            "HMA_WORKERS_QUEUES": "hash,match",
            "HMA_DATABASE_URL": "postgresql+psycopg://db/hma",
        }
    )
    assert settings.web.port == 8080
    assert settings.plugins.blocked == ("hma_s3_source", "other")
    assert settings.plugins.strict is True
    assert settings.workers.queues == ("hash", "match")
    assert settings.effective_database_url == "postgresql+psycopg://db/hma"


def test_toml_file_with_environment_overriding_it(tmp_path: Path) -> None:
    config = tmp_path / "hma.toml"
    config.write_text('log_level = "DEBUG"\n[web]\nport = 6000\nthreads = 8\n')
    settings = load_settings(environ={"HMA_CONFIG": str(config), "HMA_WEB_PORT": "7000"})
    assert settings.log_level == "DEBUG"
    assert settings.web.threads == 8
    assert settings.web.port == 7000


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"HMA_WEB_PORT": "eighty"}, "HMA_WEB_PORT (web.port): expected an integer, got 'eighty'"),
        ({"HMA_WEB_PORT": "70000"}, "HMA_WEB_PORT (web.port)"),
        (
            {"HMA_PLUGINS_STRICT": "maybe"},
            "HMA_PLUGINS_STRICT (plugins.strict): expected true or false",
        ),
        ({"HMA_LOG_LEVEL": "LOUD"}, "HMA_LOG_LEVEL (log_level)"),
        (
            {"HMA_WORKERS_QUEUES": "hash,email"},
            "HMA_WORKERS_QUEUES (workers.queues): unknown queue",
        ),
    ],
)
def test_bad_values_fail_naming_the_key(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ=environ)
    assert named in str(caught.value)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "hma.toml"
    config.write_text("[web]\nprot = 5000\n")
    with pytest.raises(SettingsError, match=r"unknown setting\(s\) prot in web"):
        load_settings(environ={"HMA_CONFIG": str(config)})


def test_wrong_type_in_file_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "hma.toml"
    config.write_text("[workers]\nprocesses = true\n")
    with pytest.raises(SettingsError, match=r"HMA_WORKERS_PROCESSES \(workers.processes\)"):
        load_settings(environ={"HMA_CONFIG": str(config)})


def test_missing_or_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"HMA_CONFIG.*does not exist"):
        load_settings(environ={"HMA_CONFIG": str(tmp_path / "absent.toml")})
    broken = tmp_path / "broken.toml"
    broken.write_text("[web\n")
    with pytest.raises(SettingsError, match=r"HMA_CONFIG.*not valid TOML"):
        load_settings(environ={"HMA_CONFIG": str(broken)})


def test_a_setting_can_come_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "database_url"
    secret.write_text("postgresql+psycopg://hma:s3cret@db/hma\n")
    settings = load_settings(environ={"HMA_DATABASE_URL_FILE": str(secret)})
    assert settings.database_url == "postgresql+psycopg://hma:s3cret@db/hma"
    # The variable itself wins over its file.
    both = {"HMA_DATABASE_URL_FILE": str(secret), "HMA_DATABASE_URL": "sqlite:///x"}
    assert load_settings(environ=both).database_url == "sqlite:///x"
    port = tmp_path / "port"
    port.write_text("8081")
    assert load_settings(environ={"HMA_WEB_PORT_FILE": str(port)}).web.port == 8081


def test_a_missing_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="HMA_WEB_SECRET_KEY_FILE: cannot read"):
        load_settings(environ={"HMA_WEB_SECRET_KEY_FILE": str(tmp_path / "absent")})
