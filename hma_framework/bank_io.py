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

from hma_framework.json_input import JsonInputError, parse_json
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


_NOT_UTF8 = "not valid UTF-8"


def _undecodable(text: str) -> bool:
    """Whether ``text`` holds bytes that were not UTF-8 (decoded with surrogateescape)."""
    return any("\udc80" <= char <= "\udcff" for char in text)


def _csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    consumed = 0  # lines read, counted here: the reader's line_num skips a row it refused

    def counted() -> Iterator[str]:
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    reader = csv.DictReader(counted())
    try:
        fieldnames = reader.fieldnames or []
    except csv.Error as exc:
        yield 1, f"the CSV header cannot be read: {exc}"
        return
    missing = [c for c in ("signal_type", "signal_value") if c not in fieldnames]
    if missing:
        yield 1, f"the CSV header lacks {', '.join(missing)}"
        return
    while True:
        first_line = consumed + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): skip the row
            yield first_line, f"not a valid CSV row: {exc}"
            continue
        values = [v for v in row.values() if isinstance(v, str)]
        if any(_undecodable(v) for v in values):
            yield first_line, _NOT_UTF8
            continue
        yield consumed, dict(row)


def _rows(lines: Iterable[str], fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) pairs; a row that cannot be parsed comes as its error message."""
    if fmt == "csv":
        yield from _csv_rows(lines)
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if _undecodable(line):
            yield number, _NOT_UTF8
            continue
        try:
            row = parse_json(line)
        except JsonInputError as exc:
            yield number, str(exc)
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
    """Decode a byte stream line by line (UTF-8), for request bodies and files alike.

    Bytes that are not UTF-8 are kept as surrogate escapes, so the row holding them is
    reported invalid rather than imported with replacement characters.
    """
    for raw in stream:
        yield raw.decode("utf-8", errors="surrogateescape")
