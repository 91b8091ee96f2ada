"""Fuzzing a live ``hma serve`` from its own ``/openapi.json`` with schemathesis.

One instance (embedded Redis and SQLite in a temporary folder) is started for the module.
Then:

- every keyed operation is called with no key (401) and with each key that lacks its scope
  (403), and every console page without a session (a redirect to sign in, or 401);
- schemathesis runs each scope's operations with that scope's key (public operations with
  none) for a bounded number of examples, and fails on any 5xx, any status, media type or
  body the spec does not declare, and any operation that answers without its key.

Run it alone with ``pytest tests/test_fuzz_api.py -s`` (``-s`` shows the figures);
``HMA_FUZZ_EXAMPLES`` sets the examples per operation (default 4).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hma_framework.testing import free_port

#: Starting an instance, ~100 scope checks and four schemathesis runs: about 3 minutes on two
#: idle cores, more on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SCOPES = ("submit", "read", "admin")
HOOKS = Path(__file__).parent / "schemathesis_hooks.py"
KEY = re.compile(r"hma_[0-9a-f]{12}_\S+")
EXAMPLES = int(os.environ.get("HMA_FUZZ_EXAMPLES", "4"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "ignored_auth",
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env["HMA_WORKERS_PROCESSES"] = "1"
    return env


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout}s")


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/status/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _create_key(folder: Path, scope: str) -> str:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "hma_framework",
            "keys",
            "create",
            "--name",
            f"fuzz {scope}",
            "--scope",
            scope,
        ],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return KEY.findall(created.stdout)[-1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A live ``hma serve`` and one key per scope."""
    folder = tmp_path_factory.mktemp("fuzz-serve")
    port = free_port()
    log_path = folder / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hma_framework", "serve", "--port", str(port)],
            cwd=folder,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        admin = _wait_for(lambda: KEY.findall(log_path.read_text()), 60, "first admin key")[0]
        _wait_for(lambda: _healthy(base), 60, "ready instance")
        keys = {"admin": admin, "read": _create_key(folder, "read")}
        keys["submit"] = _create_key(folder, "submit")
        yield base, keys
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        errors = [line for line in log_path.read_text().splitlines() if "unhandled error" in line]
        print(f"\nserver log: {len(errors)} unhandled errors")  # the 5xx the checks count


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            yield path, method, op


def _concrete(path: str, op: dict[str, Any]) -> str:
    """The path with each parameter filled: 1 for integers, ``x`` for strings."""
    for parameter in op.get("parameters", []):
        if parameter["in"] == "path":
            value = "1" if parameter["schema"].get("type") == "integer" else "x"
            path = path.replace("{" + parameter["name"] + "}", value)
    return path


def _scope_problems(base: str, keys: dict[str, str], spec: dict[str, Any]) -> tuple[int, list[str]]:
    """Each keyed operation without a key, and with every key lacking its scope."""
    checked = 0
    wrong: list[str] = []
    for path, method, op in _operations(spec):
        scope = op["x-scope"]
        if scope == "public":
            continue
        url = base + _concrete(path, op)
        console = op["security"] == [{"consoleSession": [scope]}]
        anonymous = requests.request(method, url, json={}, timeout=30, allow_redirects=False)
        expected = 302 if console and method == "get" else 401
        if anonymous.status_code != expected:
            wrong.append(f"{method.upper()} {path} without a key: {anonymous.status_code}")
        checked += 1
        if console:
            continue  # a Bearer key does not open a console session
        for other, token in keys.items():
            if other in (scope, "admin"):
                continue
            answer = requests.request(
                method, url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            if answer.status_code != 403:
                wrong.append(f"{method.upper()} {path} with a {other} key: {answer.status_code}")
    return checked, wrong


def _schemathesis(base: str, scope: str, token: str | None, report: Path) -> subprocess.Popen[str]:
    """One schemathesis run over the operations of ``scope``, started in the background.

    One worker each: hypothesis describes strategies by parsing source, which is not
    thread-safe on Python 3.11 ("AST constructor recursion depth mismatch"), so the four
    runs go in parallel as processes instead.
    """
    command = [
        shutil.which("st", path=str(Path(sys.executable).parent)) or "st",
        "run",
        f"{base}/openapi.json",
        "--include-by",
        f"/x-scope == {scope}",
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--checks",
        ",".join(CHECKS),
        "--seed",
        "15",
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "30",
        "--max-redirects",
        "0",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    return subprocess.Popen(
        command,
        cwd=report.parent,  # its crash cache (.schemathesis/) stays out of the work tree
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**_env(), "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )


def _figures(scope: str, output: str) -> str:
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    cases = re.search(r"(\d+) generated", output)
    failing = re.search(r"(\d+) found (\d+) unique failures", output)
    return (
        f"schemathesis {scope}: {selected.group(1) if selected else '?'} operations, "
        f"{cases.group(1) if cases else '?'} cases, "
        f"{failing.group(2) if failing else 0} unique failures"
    )


def test_fuzzing_finds_nothing(served: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    """Scopes enforced everywhere, then schemathesis per scope: no 5xx, nothing off-spec."""
    base, keys = served
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()
    runs = {
        scope: _schemathesis(base, scope, keys.get(scope), tmp_path / f"{scope}.xml")
        for scope in ("public", *SCOPES)
    }
    checked, wrong = _scope_problems(base, keys, spec)
    print(f"\nscope checks: {checked} keyed operations, {len(wrong)} wrong")
    failed: dict[str, str] = {}
    for scope, run in runs.items():
        output, _ = run.communicate(timeout=900)
        print(_figures(scope, output))
        if run.returncode != 0:
            failed[scope] = output[-15000:]
    assert checked >= 90
    assert not wrong, "\n".join(wrong)
    assert not failed, "\n\n".join(f"== {scope} ==\n{out}" for scope, out in failed.items())
