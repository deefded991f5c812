"""Request bodies without a Content-Length (``Transfer-Encoding: chunked``) over the body limit
are refused with 413 ``body_too_large``, as bodies with a Content-Length are; a body of exactly the
limit is accepted either way.

gevent's server sets ``wsgi.input_terminated``, so werkzeug reads a chunked body through a
`LimitedStream` capped at ``MAX_CONTENT_LENGTH``; but that stream simply *stops* at the cap (its
``readall`` never looks past it), so an oversized chunked body was truncated and processed. Here
the stream, once it has handed out ``limit`` bytes, reads one byte more: if the body goes on, the
request is refused. Nothing is buffered beyond what the route reads anyway.
"""

from __future__ import annotations

from flask import Flask, Request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream


class _MaxStream(LimitedStream):
    """A `LimitedStream` whose limit is a maximum that the body must not exceed."""

    def __init__(self, stream, limit: int) -> None:
        super().__init__(stream, limit, is_max=True)

    def on_exhausted(self) -> None:
        # Reached the limit: the body may end exactly here, or go on (then it is too large).
        try:
            more = self._stream.read(1)
        except (OSError, ValueError):
            more = b""
        if more:
            raise RequestEntityTooLarge()

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted:
            self.on_exhausted()
        return data


class _DeclaredLengthStream(LimitedStream):
    """A body of a declared length, read whole in one read of exactly that length.

    Werkzeug's `readall` reads 64 KiB at a time into a bytearray and copies that into bytes at
    the end: for a 1 MiB report diff, 16 reads and two extra copies of the body, about a fifth
    of the Node's hub time per report (apps/node/benchmarks/report_ingest.py). The server's
    buffered reader fills one buffer of the declared size instead."""

    def readall(self) -> bytes:
        remaining = self.limit - self._pos
        if remaining <= 0:
            return b""
        try:
            data = self._stream.read(remaining)
        except (OSError, ValueError) as error:
            self.on_disconnect(error=error)
            raise
        self._pos += len(data)
        if len(data) < remaining:
            self.on_disconnect()
        return data


class BoundedRequest(Request):
    """Flask's request, with chunked bodies held to ``max_content_length``."""

    @cached_property
    def stream(self):  # type: ignore[override]
        if self.shallow:
            raise RuntimeError("this request was created with shallow=True: no reading its body")
        limit = self.max_content_length
        environ = self.environ
        if limit is not None and environ.get("wsgi.input_terminated"):
            if self.content_length is None:
                return _MaxStream(environ["wsgi.input"], limit)
            if self.content_length > limit:
                raise RequestEntityTooLarge()
            # Werkzeug would cap the stream at `limit` with `is_max`, which refuses the read that
            # finds the end of a body of exactly `limit` bytes; the declared length is the cap.
            return _DeclaredLengthStream(environ["wsgi.input"], self.content_length)
        return get_input_stream(environ, max_content_length=limit)


def init_body_limit(app: Flask) -> None:
    app.request_class = BoundedRequest
