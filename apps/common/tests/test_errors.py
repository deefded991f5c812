"""JSON error answers, in-process (Flask's test client)."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from fedgrid_protocol.errors import ApiError
from fedgrid_server.errors import register_error_handlers


@pytest.fixture
def client():
    app = Flask("errors_test")
    app.config["MAX_CONTENT_LENGTH"] = 10

    @app.post("/refuse")
    def refuse():
        raise ApiError("invalid_request", "no", 400, headers={"Retry-After": "3"})

    @app.post("/echo")
    def echo():
        from flask import request

        return {"size": len(request.get_data())}

    @app.get("/crash")
    def crash():
        raise ValueError("secret detail")

    register_error_handlers(app, name="Thing", log=logging.getLogger("fedgrid.test"))
    return app.test_client()


def test_api_errors_are_answered_as_they_are(client):
    answer = client.post("/refuse")
    assert answer.status_code == 400 and answer.headers["Retry-After"] == "3"
    assert answer.get_json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("get", "/nowhere", 404, "not_found"),
    ("get", "/refuse", 405, "method_not_allowed"),
])
def test_http_errors_get_stable_codes(client, method, path, status, code):
    answer = getattr(client, method)(path)
    assert answer.status_code == status and answer.is_json
    assert answer.get_json()["error"]["code"] == code


def test_405_answers_carry_allow(client):
    answer = client.get("/refuse")
    assert answer.status_code == 405 and answer.is_json
    assert "POST" in {method.strip() for method in answer.headers["Allow"].split(",")}


def test_a_body_over_the_limit_names_the_limit(client):
    answer = client.post("/echo", data=b"x" * 11)
    assert answer.status_code == 413
    assert answer.get_json()["error"]["code"] == "body_too_large"
    assert "larger than this Thing accepts (10 bytes)" in answer.get_json()["error"]["message"]


def test_unexpected_errors_are_logged_and_answered_without_details(client, caplog):
    with caplog.at_level(logging.ERROR, logger="fedgrid.test"):
        answer = client.get("/crash")
    assert answer.status_code == 500
    error = answer.get_json()["error"]
    assert error["code"] == "internal_error" and "secret detail" not in error["message"]
    assert "the Thing's log has details" in error["message"]
    assert "secret detail" in caplog.text
