"""Fixtures shared by the core tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_actions_support import Receiver

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN_DIR = REPO_ROOT / "examples" / "hma-example-plugin"


def write_dist_info(
    site_dir: Path, distribution: str, entry_points: dict[str, str], version: str = "0.1.0"
) -> None:
    """Make ``site_dir`` look like site-packages holding an installed distribution.

    importlib.metadata finds a ``*.dist-info`` folder on ``sys.path`` exactly as it finds a
    pip-installed package, so plugins load through the real entry-point machinery.
    """
    dist_info = site_dir / f"{distribution.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
    )
    lines = ["[hma]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def install_on_path(monkeypatch: pytest.MonkeyPatch, *dirs: Path) -> dict[str, str]:
    """Put ``dirs`` on sys.path for this process; return an env for child processes."""
    for directory in dirs:
        monkeypatch.syspath_prepend(str(directory))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [*(str(d) for d in dirs), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


@pytest.fixture
def example_plugin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The example plugin, installed as a package is: a dist-info with its entry point."""
    site_dir = tmp_path / "site"
    write_dist_info(site_dir, "hma-example-plugin", {"example": "hma_example_plugin"})
    env = install_on_path(monkeypatch, site_dir, EXAMPLE_PLUGIN_DIR)
    yield env
    sys.modules.pop("hma_example_plugin", None)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real webhook endpoint on loopback (modules that need a slower one override this)."""
    server = Receiver()
    yield server
    server.close()
