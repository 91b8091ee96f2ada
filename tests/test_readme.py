"""The README's settings tables are generated from the code and must stay current."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from hma_framework.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- settings:start[^>]*-->\n)(.*?)(<!-- settings:end -->)", re.S)


def generated_tables() -> str:
    result = CliRunner().invoke(cli, ["settings", "--markdown"], env={})
    assert result.exit_code == 0, result.output
    return result.output


def test_readme_settings_tables_are_current() -> None:
    match = BLOCK.search(README.read_text())
    assert match, "README lost its settings markers"
    assert match.group(2) == generated_tables(), (
        "README settings are stale: run `python tests/test_readme.py` to regenerate them"
    )


if __name__ == "__main__":
    text = README.read_text()
    README.write_text(BLOCK.sub(lambda m: m.group(1) + generated_tables() + m.group(3), text))
