"""Errors that cross plugin boundaries, split by what the pipeline should do about them."""

from __future__ import annotations


class PermanentMediaError(Exception):
    """Retrying cannot help: the content is marked failed with this message."""


class UnhashableMediaError(PermanentMediaError):
    """The media is not something this signal type can hash (not an image, corrupt, a bomb)."""


class PermanentFetchError(PermanentMediaError):
    """The media cannot be fetched and will not become fetchable (404, refused address)."""


class TransientFetchError(Exception):
    """Fetching failed in a way worth retrying (timeout, 5xx, a dropped connection)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the source asked us to wait, if it said
