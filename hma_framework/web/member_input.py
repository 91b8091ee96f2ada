"""Turning one request row into a bank member: by hash, by URL, or by uploaded media.

Media is hashed here, in the API process (an admin adding a few items, not a bulk path);
bulk imports of hashes go through ``hma banks import`` or ``/banks/<name>/import``.
"""

from __future__ import annotations

from typing import Any

from hma_framework.errors import PermanentMediaError, TransientFetchError
from hma_framework.media_hashing import bytes_file, compute_signals, fetched
from hma_framework.registry import InvalidSignalError
from hma_framework.runtime import Runtime
from hma_framework.store.banks import NewMember
from hma_framework.web.fetch_slots import FetchesBusyError, fetch_slot
from hma_framework.web.validation import (
    CREDENTIALS_REFUSED,
    decode_base64_media,
    url_has_credentials,
)

MAX_BATCH = 5000
CONTENT_TYPES = ("photo", "video")


class MemberError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _text(row: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = row.get(name, default)
    if value is not None and not isinstance(value, str):
        raise MemberError(f"field '{name}' must be a string")
    return value


def _tags(row: dict[str, Any]) -> tuple[str, ...]:
    tags = row.get("tags", [])
    if isinstance(tags, str):  # multipart forms send "a,b"
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise MemberError("field 'tags' must be a list of strings")
    return tuple(tags)


def _declared_signals(runtime: Runtime, row: dict[str, Any]) -> list[tuple[str, str]]:
    entries = row.get("signals")
    if entries is None:
        entries = [{"signal_type": row.get("signal_type"), "signal_value": row.get("signal_value")}]
    if not isinstance(entries, list) or not entries:
        raise MemberError("field 'signals' must be a non-empty list")
    signals = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise MemberError("each signal needs signal_type and signal_value")
        signal_type, value = entry.get("signal_type"), entry.get("signal_value")
        if not isinstance(signal_type, str) or not isinstance(value, str):
            raise MemberError("each signal needs signal_type and signal_value strings")
        try:
            signals.append((signal_type, runtime.registry.normalize_signal(signal_type, value)))
        except InvalidSignalError as exc:
            raise MemberError(str(exc)) from exc
    return signals


def _hashed_signals(
    runtime: Runtime, row: dict[str, Any], upload: bytes | None
) -> list[tuple[str, str]]:
    content_type = _text(row, "content_type")
    if content_type not in CONTENT_TYPES:
        raise MemberError(f"content_type must be one of {', '.join(CONTENT_TYPES)}")
    try:
        if "content_url" in row:
            url = _text(row, "content_url")
            if not url:
                raise MemberError("field 'content_url' must be a URL string")
            if url_has_credentials(url):
                raise MemberError(CREDENTIALS_REFUSED)
            try:
                with fetch_slot(runtime), fetched(runtime, url) as path:
                    computed = compute_signals(runtime, content_type, path, alternates=False)
            except FetchesBusyError as exc:
                raise MemberError(exc.message, status=503) from exc
        else:
            media = upload
            if media is None:
                try:
                    media = decode_base64_media(_text(row, "content_bytes") or "")
                except ValueError as exc:
                    raise MemberError(str(exc)) from exc
            if not media:
                raise MemberError("the media is empty")
            with bytes_file(runtime, media) as path:
                computed = compute_signals(runtime, content_type, path, alternates=False)
    except PermanentMediaError as exc:
        raise MemberError(f"cannot hash the media: {exc}") from exc
    except TransientFetchError as exc:
        raise MemberError(f"cannot fetch the media now: {exc}", status=502) from exc
    usable = [(s.signal_type, s.value) for s in computed if s.quality_ok]
    if not usable:
        raise MemberError("the media hashed, but under every signal type's quality threshold")
    return usable


def member_from_json(runtime: Runtime, row: Any, upload: bytes | None = None) -> NewMember:
    """``upload`` is the media of a multipart request; a JSON row can never supply it."""
    if not isinstance(row, dict):
        raise MemberError("each member must be a JSON object")
    media_given = upload is not None or any(k in row for k in ("content_url", "content_bytes"))
    signals = (
        _hashed_signals(runtime, row, upload) if media_given else _declared_signals(runtime, row)
    )
    return NewMember(
        signals=tuple(signals),
        content_id=_text(row, "content_id"),
        notes=_text(row, "notes", "") or "",
        tags=_tags(row),
    )
