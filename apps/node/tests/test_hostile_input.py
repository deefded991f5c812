"""Hostile input against a real Node (issue 16): deeply nested JSON, JSON that is not an object,
and safetensors headers that are JSON but not the format each get a coded 400, over HTTP and
WebSocket, the socket stays usable, and the Node logs no traceback (the shared_node fixture checks
its log at the end of the session)."""

from __future__ import annotations

import json
import struct

import pytest
import requests
import websocket

from fedgrid_plans import tensors
from tests.support.models import logistic_regression, random_diff, unique_name

DEEP = "[" * 100_000 + "]" * 100_000


def _header(text: str, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(text.encode())) + text.encode() + body


def _entry(**overrides) -> str:
    return json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], **overrides}})


HOSTILE_TENSORS = {
    "nested 1e5 levels": _header(DEEP),
    "a 5000-digit integer": _header('{"w": {"dtype": "F32", "shape": [' + "9" * 5000
                                    + '], "data_offsets": [0, 8]}}', b"\0" * 8),
    "shape [0, 2**63]": _header(_entry(shape=[0, 2**63], data_offsets=[0, 0])),
    "65 dimensions": _header(_entry(shape=[0] * 65, data_offsets=[0, 0])),
    "dtype a list": _header(_entry(dtype=["F32"]), b"\0" * 8),
    "shape [true]": _header(_entry(shape=[True], dtype="U8", data_offsets=[0, 1]), b"\0"),
    "negative offsets": _header(_entry(data_offsets=[-8, 0]), b"\0" * 8),
    "duplicate names": _header('{"w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]},'
                               ' "w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'),
    "metadata not a string map": _header('{"__metadata__": [1]}'),
    "huge header length": struct.pack("<Q", 2**64 - 1) + b"{}",
}


@pytest.fixture
def ws(shared_node):
    connection = websocket.create_connection(shared_node.ws_url, timeout=30)
    yield connection
    connection.close()


def _send(ws, message: str | bytes) -> dict:
    if isinstance(message, bytes):
        ws.send_binary(message)
    else:
        ws.send(message)
    reply = ws.recv()
    assert isinstance(reply, str), reply[:200]
    return json.loads(reply)


def _still_usable(ws) -> None:
    reply = _send(ws, json.dumps({"type": "model-centric/fly", "request_id": "ping"}))
    assert reply["request_id"] == "ping" and reply["data"]["error"]["code"] == "unknown_event"


def test_websocket_text_frames_that_are_not_json_objects_get_a_coded_400(ws):
    for message, code in [("[1,2]", "invalid_request"), ("null", "invalid_request"),
                          ("5", "invalid_request"), ('"text"', "invalid_request"),
                          (DEEP, "invalid_json"), ('{"a": ' * 2000 + "1" + "}" * 2000, "invalid_json"),
                          ("9" * 5000, "invalid_json"),
                          (json.dumps({"type": "model-centric/authenticate",
                                       "data": json.loads("[" * 500 + "]" * 500)}), "invalid_json")]:
        reply = _send(ws, message)
        error = reply["data"]["error"]
        assert (error["status"], error["code"]) == (400, code), (message[:40], reply)
        _still_usable(ws)


def test_websocket_binary_frames_with_malformed_headers_get_invalid_frame_without_a_token(ws):
    frames = dict(HOSTILE_TENSORS)
    frames["envelope nested 1e5 levels"] = tensors.encode({}, metadata={"envelope": DEEP})
    frames["envelope not an object"] = tensors.encode({}, metadata={"envelope": "[1, 2]"})
    for case, frame in frames.items():
        reply = _send(ws, frame)
        error = reply["data"]["error"]
        assert (error["status"], error["code"]) == (400, "invalid_frame"), (case, reply)
        _still_usable(ws)


def test_deeply_nested_http_json_is_invalid_json(shared_node):
    url = f"{shared_node.url}/model-centric"
    nested_object = '{"a": ' * 100_000 + "1" + "}" * 100_000
    for event in ("authenticate", "cycle-request"):
        for body in (DEEP, nested_object, '{"model_name": ' + "[" * 100 + "]" * 100 + "}"):
            answer = requests.post(f"{url}/{event}", data=body, timeout=30,
                                   headers={"Content-Type": "application/json"})
            assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    # A JSON form field of host-training (read before the token is checked).
    plan, checkpoint = logistic_regression()
    answer = requests.post(
        f"{url}/host-training", timeout=30,
        headers={"Authorization": f"Bearer {shared_node.admin_token}"},
        data={"name": unique_name(), "version": "1.0", "client_config": DEEP},
        files=[("model", ("model", checkpoint)), ("plans[training_plan]", ("plan", plan))])
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    assert "client_config" in answer.json()["error"]["message"]
    # Metrics in a report's query string.
    answer = requests.post(f"{url}/report", timeout=30, data=b"",
                           params={"worker_id": "w", "request_key": "k", "num_samples": 1,
                                   "metrics": "[" * 500 + "]" * 500},
                           headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"


def _host(api, *, plan=None, checkpoint=None):
    default_plan, default_checkpoint = logistic_regression()
    name = unique_name()
    answer = api.call("host-training", {
        "name": name, "version": "1.0", "client_config": {"batch_size": 16, "lr": 0.1},
        "server_config": {"max_diffs": 2},
    }, blobs={"model": checkpoint or default_checkpoint,
              "plans/training_plan": plan or default_plan}, admin=True)
    return name, answer


def test_report_with_a_malformed_diff_is_diff_malformed(api):
    name, hosted = _host(api)
    assert hosted.status == 200, hosted.body
    worker_id = api.call("authenticate", {"model_name": name, "model_version": "1.0"}).body["worker_id"]
    cycle = api.call("cycle-request", {"worker_id": worker_id, "model": name, "version": "1.0"})
    assert cycle.body["status"] == "accepted", cycle.body
    fields = {"worker_id": worker_id, "request_key": cycle.body["request_key"], "num_samples": 10}
    for case, diff in HOSTILE_TENSORS.items():
        answer = api.call("report", fields, blobs={"diff": diff})
        assert (answer.status, answer.error_code) == (400, "diff_malformed"), (case, answer.body)
    # A refused diff does not spend the worker's place: a good one is still taken.
    good = tensors.encode(random_diff(logistic_regression()[1], 0))
    assert api.call("report", fields, blobs={"diff": good}).status == 200


def test_hosting_with_a_malformed_checkpoint_or_plan_is_refused(api):
    for case, data in HOSTILE_TENSORS.items():
        _, answer = _host(api, checkpoint=data)
        assert (answer.status, answer.error_code) == (400, "checkpoint_invalid"), (case, answer.body)
        _, answer = _host(api, plan=data)
        assert (answer.status, answer.error_code) == (400, "plan_invalid"), (case, answer.body)
    # A plan whose manifest is nested too deeply.
    nested = tensors.encode({"graph/train": tensors.decode(logistic_regression()[0])["graph/train"]},
                            metadata={"fedgrid.plan": DEEP})
    _, answer = _host(api, plan=nested)
    assert (answer.status, answer.error_code) == (400, "plan_invalid"), answer.body
