"""The body size limit for chunked requests too: 413, never a silently cut body.

A request without ``Content-Length`` (``Transfer-Encoding: chunked``) cannot be refused up
front, so werkzeug caps the stream at ``MAX_CONTENT_LENGTH`` while it is read. Streaming
reads past the cap raise 413, but reading it whole (``get_data``, form parsing) stopped at
the cap and returned the first bytes as if they were the body: a JSON body over the limit
was answered 400 "not valid JSON", and a body cut at a lucky place could even parse.
"""

from __future__ import annotations

from typing import IO, cast

from flask import Request
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream


class _CappedStream(LimitedStream):
    """``LimitedStream`` at the maximum whose whole read refuses a body longer than it."""

    def __init__(self, source: IO[bytes], limit: int) -> None:
        super().__init__(source, limit, is_max=True)
        self._source = source

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted and self._source.read(1):  # one byte more than allowed
            self.on_exhausted()  # raises RequestEntityTooLarge
        return data


class CappedRequest(Request):
    """Flask's request, with a stream that never passes off a cut body as a whole one."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        chunked = self.content_length is None and "wsgi.input_terminated" in self.environ
        if chunked and limit is not None:
            return cast(IO[bytes], _CappedStream(self.environ["wsgi.input"], limit))
        return get_input_stream(self.environ, max_content_length=limit)
