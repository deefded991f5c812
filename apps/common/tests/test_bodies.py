"""Request bodies of a declared length are read whole, in one read of the server's stream."""

from __future__ import annotations

import io

from flask import Flask, request

from fedgrid_server.bodies import init_body_limit


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        return super().read(size)


def app_reading_bodies() -> Flask:
    app = Flask("bodies")
    app.config["MAX_CONTENT_LENGTH"] = 4 * 1024 * 1024
    init_body_limit(app)

    @app.post("/body")
    def body():
        return {"size": len(request.get_data(cache=False))}

    return app


def test_a_declared_body_is_read_in_one_read():
    body = bytes(range(256)) * 4096  # 1 MiB
    stream = CountingStream(body)
    answer = app_reading_bodies().test_client().post(
        "/body", input_stream=stream, content_length=len(body),
        environ_overrides={"wsgi.input_terminated": True})  # as gevent's server says
    assert answer.status_code == 200 and answer.json == {"size": len(body)}
    assert stream.reads == 1  # werkzeug's own readall makes 16 reads of 64 KiB and two copies


def test_a_body_shorter_than_declared_is_a_client_error():
    stream = CountingStream(b"x" * 100)
    answer = app_reading_bodies().test_client().post(
        "/body", input_stream=stream,
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": "1000"})
    assert answer.status_code == 400
