"""The plugin contract: discovery, conflicts, typos, import failures, the example plugin."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest
from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.sha256 import VideoSHA256Signal

from hma_framework.hookspecs import hookimpl
from hma_framework.plugins import PluginLoadError, tx_extension_hooks
from hma_framework.registry import RegistryError, make_registry
from hma_framework.testing import check_action_handler_record, check_signal_type_record
from hma_framework.types import IndexRecord, SignalTypeRecord
from tests.conftest import install_on_path, write_dist_info

BUILTIN_PLUGINS = {"hma_builtin", "hma_pdq", "hma_video_md5", "hma_threatexchange", "hma_s3_source"}


def _plugin(name: str, **hooks: object) -> types.SimpleNamespace:
    plugin = types.SimpleNamespace(__name__=name, **hooks)
    return plugin


def test_builtins_load_through_entry_points() -> None:
    registry = make_registry(strict=True)
    loaded = {summary.source.name: summary for summary in registry.plugins}
    assert set(loaded) >= BUILTIN_PLUGINS
    # They came from the distribution's entry points, as a third-party plugin would.
    assert all(loaded[name].source.distribution == "hma-framework" for name in BUILTIN_PLUGINS)
    assert {"pdq", "video_md5"} <= set(registry.signal_types)
    assert "fb_threatexchange" in registry.exchanges
    assert [r.name for r in registry.signal_types_for("photo")] == ["pdq"]
    assert [r.name for r in registry.signal_types_for("video")] == ["video_md5"]
    for record in registry.signal_types.values():
        check_signal_type_record(record)


def test_duplicate_signal_type_names_both_plugins() -> None:
    @hookimpl
    def hma_signal_types() -> Iterator[SignalTypeRecord]:
        yield SignalTypeRecord(VideoMD5Signal)

    first = _plugin("first_plugin", hma_signal_types=hma_signal_types)
    second = _plugin("second_plugin", hma_signal_types=hma_signal_types)
    with pytest.raises(RegistryError) as caught:
        make_registry(extra_plugins=[first, second], load_entry_points=False)
    assert "first_plugin" in str(caught.value) and "second_plugin" in str(caught.value)
    assert "video_md5" in str(caught.value)


def test_duplicate_with_a_builtin_names_the_builtin() -> None:
    @hookimpl
    def hma_signal_types() -> Iterator[SignalTypeRecord]:
        yield SignalTypeRecord(VideoMD5Signal)

    with pytest.raises(RegistryError, match=r"'hma_video_md5'.*'shadowing_plugin'"):
        make_registry(
            extra_plugins=[_plugin("shadowing_plugin", hma_signal_types=hma_signal_types)]
        )


def test_duplicate_plugin_name_is_refused() -> None:
    with pytest.raises(PluginLoadError, match="two plugins are named 'hma_pdq'"):
        make_registry(extra_plugins=[_plugin("hma_pdq")])


def test_misspelled_hook_implementation_fails_at_startup() -> None:
    @hookimpl
    def hma_signal_type() -> Iterator[SignalTypeRecord]:  # missing the final "s"
        yield SignalTypeRecord(VideoMD5Signal)

    with pytest.raises(pluggy.PluginValidationError, match="hma_signal_type"):
        make_registry(
            extra_plugins=[_plugin("typo_plugin", hma_signal_type=hma_signal_type)],
            load_entry_points=False,
        )


def test_wrong_record_type_names_the_plugin() -> None:
    @hookimpl
    def hma_signal_types() -> Iterator[object]:
        yield VideoMD5Signal  # the class itself, not a SignalTypeRecord

    with pytest.raises(RegistryError, match=r"plugin 'careless'.*SignalTypeRecord"):
        make_registry(
            extra_plugins=[_plugin("careless", hma_signal_types=hma_signal_types)],
            load_entry_points=False,
        )


def test_index_for_unknown_signal_type_is_refused() -> None:
    @hookimpl
    def hma_indexes() -> Iterator[IndexRecord]:
        yield IndexRecord(signal_type="no_such_signal", factory=lambda settings: None)  # type: ignore[arg-type,return-value]

    with pytest.raises(RegistryError, match="no_such_signal"):
        make_registry(
            extra_plugins=[_plugin("dangling", hma_indexes=hma_indexes)], load_entry_points=False
        )


def test_records_validate_names() -> None:
    with pytest.raises(ValueError, match="lower_snake_case"):
        IndexRecord(signal_type="Not-Snake", factory=lambda settings: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="SignalType"):
        SignalTypeRecord(str)  # type: ignore[arg-type]


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    site = tmp_path / "site"
    write_dist_info(site, "hma-broken-plugin", {"broken": "hma_broken_plugin"})
    (site / "hma_broken_plugin.py").write_text("raise ImportError('needs libfoo, not installed')\n")
    env = install_on_path(monkeypatch, site)
    yield env
    sys.modules.pop("hma_broken_plugin", None)


def test_plugin_that_fails_to_import_is_skipped_with_a_logged_error(
    broken_plugin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        registry = make_registry(strict=False)
    assert "broken" not in {s.source.name for s in registry.plugins}
    assert {s.source.name for s in registry.plugins} >= BUILTIN_PLUGINS
    assert [f.name for f in registry.failed_plugins] == ["broken"]
    assert any(
        "broken" in r.getMessage() and "needs libfoo" in r.getMessage() for r in caplog.records
    )


def test_plugin_that_fails_to_import_fails_strict_loading(broken_plugin: dict[str, str]) -> None:
    with pytest.raises(PluginLoadError, match=r"'broken'.*needs libfoo"):
        make_registry(strict=True)


def test_blocked_plugin_is_not_loaded(broken_plugin: dict[str, str]) -> None:
    registry = make_registry(strict=True, blocked=["broken", "hma_threatexchange"])
    names = {s.source.name for s in registry.plugins}
    assert "broken" not in names and "hma_threatexchange" not in names
    assert "fb_threatexchange" not in registry.exchanges


def test_example_plugin_is_loaded_listed_and_usable(
    example_plugin_env: dict[str, str], tmp_path: Path
) -> None:
    registry = make_registry(strict=True)
    summary = next(s for s in registry.plugins if s.source.name == "example")
    assert summary.source.distribution == "hma-example-plugin"
    assert summary.provides["signal_types"] == ("photo_sha256",)
    assert summary.provides["action_handlers"] == ("log_line",)

    signal = registry.signal_types["photo_sha256"]
    check_signal_type_record(signal)
    assert sorted(r.name for r in registry.signal_types_for("photo")) == ["pdq", "photo_sha256"]
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg")
    digest = signal.signal_type.hash_from_file(photo)  # type: ignore[attr-defined]
    assert digest == signal.signal_type.hash_from_bytes(photo.read_bytes())  # type: ignore[attr-defined]

    handler_record = registry.action_handlers["log_line"]
    config = handler_record.config_class(path=str(tmp_path / "actions.log"))
    check_action_handler_record(handler_record, config)
    from hma_framework.types import ActionRequest, MatchedSignal

    outcome = handler_record.factory(config).perform(
        ActionRequest(
            content_id="c-1",
            content_type="photo",
            additional_fields=(),
            matches=(MatchedSignal("photo_sha256", digest, 0, "bank_a", 7),),
            rules_fired=("remove",),
        )
    )
    assert outcome.ok
    assert (tmp_path / "actions.log").read_text().strip() == (
        '{"content_id": "c-1", "rules": ["remove"], "banks": ["bank_a"]}'
    )


def test_hma_plugins_command_lists_the_example_plugin(example_plugin_env: dict[str, str]) -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "hma_framework", "plugins"],
        env=example_plugin_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in [*BUILTIN_PLUGINS, "example"]:
        assert name in listing
    assert "photo_sha256" in listing and "log_line" in listing


def test_tx_extension_manifest_loads_through_the_adapter() -> None:
    manifest = ThreatExchangeExtensionManifest(signal_types=(VideoSHA256Signal,))
    module = types.ModuleType("hma_tx_video_sha256")
    module.hma_signal_types, module.hma_exchanges = tx_extension_hooks(manifest)  # type: ignore[attr-defined]
    registry = make_registry(extra_plugins=[module], strict=True)
    assert "video_sha256" in registry.signal_types
    check_signal_type_record(registry.signal_types["video_sha256"])
    summary = next(s for s in registry.plugins if s.source.name == "hma_tx_video_sha256")
    assert summary.provides["signal_types"] == ("video_sha256",)
