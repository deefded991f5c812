"""`speed-test`: a download sample streamed from one small block, an upload sample drained in chunks.

PyGrid allocated a fresh 64 MiB random buffer on every request. Here one 64 KiB random block is
made at import and repeated, so a download of any size costs no per-request memory, and uploads
are read and dropped 64 KiB at a time. Devices time both and report Mbit/s to cycle-request.
"""

from __future__ import annotations

import os

from flask import Response, current_app, jsonify, request, stream_with_context

from fedgrid_protocol.errors import invalid_request

from .http_routes import blueprint

CHUNK_BYTES = 64 * 1024
DEFAULT_SAMPLE_BYTES = 4 * 1024 * 1024
MAX_SAMPLE_BYTES = 64 * 1024 * 1024
_BLOCK = os.urandom(CHUNK_BYTES)  # random, so compressing proxies cannot shrink the sample


@blueprint.get("/speed-test")
def speed_test_download():
    raw = request.args.get("size", str(DEFAULT_SAMPLE_BYTES))
    # ASCII digits only, and few of them: str.isdigit() also takes "²" (which int() refuses) and int()
    # refuses more than 4300 digits; either was a 500.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 20) or int(raw) > MAX_SAMPLE_BYTES:
        raise invalid_request(f"size must be an integer number of bytes up to {MAX_SAMPLE_BYTES}")
    size = int(raw)

    def chunks():
        remaining = size
        while remaining > 0:
            piece = _BLOCK if remaining >= CHUNK_BYTES else _BLOCK[:remaining]
            remaining -= len(piece)
            yield piece

    response = Response(stream_with_context(chunks()), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(size)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/speed-test")
def speed_test_upload():
    received = 0
    stream = request.stream
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        received += len(chunk)
        if limit is not None and received > limit:
            from werkzeug.exceptions import RequestEntityTooLarge

            raise RequestEntityTooLarge()
    return jsonify({"status": "success", "received": received})
