"""Bank import and export as CSV or NDJSON, streamed in batches.

Rows carry ``signal_type``, ``signal_value``, ``tags``, ``notes`` and ``content_id``. Invalid
rows are reported with their line numbers and skipped, or, in strict mode, refuse the whole
import before anything is written.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import attrs

from hma_framework.registry import InvalidSignalError, Registry
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.db import Store

FORMATS = ("csv", "ndjson")
CSV_COLUMNS = ("signal_type", "signal_value", "tags", "notes", "content_id")
BATCH = 5000
MAX_REPORTED = 1000


@attrs.define
class ImportReport:
    added: int = 0
    invalid: int = 0
    errors: list[tuple[int, str]] = attrs.field(factory=list)

    def reject(self, line: int, message: str) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append((line, message))

    def as_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "invalid": self.invalid,
            "errors": [{"line": line, "message": message} for line, message in self.errors],
        }


def guess_format(filename: str) -> str:
    return "csv" if filename.lower().endswith(".csv") else "ndjson"


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(";") if t.strip())
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return tuple(value)
    raise ValueError("tags must be a list of strings (or ';'-separated in CSV)")


def _rows(lines: Iterable[str], fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) pairs; a row that cannot be parsed comes as its error message."""
    if fmt == "csv":
        reader = csv.DictReader(lines)
        missing = [c for c in ("signal_type", "signal_value") if c not in (reader.fieldnames or [])]
        if missing:
            yield 1, f"the CSV header lacks {', '.join(missing)}"
            return
        for row in reader:
            yield reader.line_num, dict(row)
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON: {exc.msg}"
            continue
        yield number, row if isinstance(row, dict) else "each line must be a JSON object"


def _member(registry: Registry, row: dict[str, Any]) -> NewMember:
    signal_type, value = row.get("signal_type"), row.get("signal_value")
    if not isinstance(signal_type, str) or not isinstance(value, str):
        raise ValueError("signal_type and signal_value are required strings")
    notes, content_id = row.get("notes") or "", row.get("content_id") or None
    if not isinstance(notes, str) or not (content_id is None or isinstance(content_id, str)):
        raise ValueError("notes and content_id must be strings")
    try:
        normalized = registry.normalize_signal(signal_type, value)
    except InvalidSignalError as exc:
        raise ValueError(str(exc)) from exc
    return NewMember(
        signals=((signal_type, normalized),),
        content_id=content_id,
        notes=notes,
        tags=_tags(row.get("tags")),
    )


def _validated(
    registry: Registry, lines: Iterable[str], fmt: str, report: ImportReport
) -> Iterator[NewMember]:
    for number, row in _rows(lines, fmt):
        if isinstance(row, str):
            report.reject(number, row)
            continue
        try:
            yield _member(registry, row)
        except ValueError as exc:
            report.reject(number, str(exc))


def validate_only(registry: Registry, lines: Iterable[str], fmt: str) -> ImportReport:
    report = ImportReport()
    for _ in _validated(registry, lines, fmt, report):
        pass
    return report


def import_members(
    store: Store,
    registry: Registry,
    bank: str,
    lines: Iterable[str],
    fmt: str,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Add every valid row to ``bank`` in batches; invalid rows are reported and skipped."""
    report = ImportReport()
    banks = Banks(store)
    batch: list[NewMember] = []
    for member in _validated(registry, lines, fmt, report):
        batch.append(member)
        if len(batch) == BATCH:
            report.added += len(banks.add_members(bank, batch))
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        report.added += len(banks.add_members(bank, batch))
        if progress:
            progress(len(batch))
    return report


def export_lines(store: Store, bank: str, fmt: str) -> Iterator[str]:
    """The bank's members, one line per signal, in the import format (round-trips)."""
    if fmt == "csv":
        yield ",".join(CSV_COLUMNS) + "\r\n"
    for member in BankQueries(store).iter_members(bank):
        for signal in member["signals"]:
            row = {
                "signal_type": signal["signal_type"],
                "signal_value": signal["signal_value"],
                "tags": member["tags"],
                "notes": member["notes"],
                "content_id": member["content_id"],
            }
            if fmt == "ndjson":
                yield json.dumps(row) + "\n"
                continue
            buffer = io.StringIO()
            csv.writer(buffer).writerow(
                [
                    row["signal_type"],
                    row["signal_value"],
                    ";".join(row["tags"]),
                    row["notes"],
                    row["content_id"] or "",
                ]
            )
            yield buffer.getvalue()


def text_lines(stream: IO[bytes]) -> Iterator[str]:
    """Decode a byte stream line by line (UTF-8), for request bodies and files alike."""
    for raw in stream:
        yield raw.decode("utf-8", errors="replace")
