"""The model-centric API against a real Node process, over HTTP and WebSocket, on every database.

Each test hosts its own uniquely named model on the session's shared Node, so tests do not
interfere; the status and the stable error code of every refusal are asserted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fedgrid_plans import tensors
from tests.support.models import logistic_regression, random_diff, unique_name


def host(api, name=None, *, server_config=None, client_config=None, plan=None, checkpoint=None,
         admin=True):
    default_plan, default_checkpoint = logistic_regression()
    name = name or unique_name()
    return api.call(
        "host-training",
        {
            "name": name,
            "version": "1.0",
            "client_config": client_config or {"batch_size": 16, "lr": 0.1},
            "server_config": server_config if server_config is not None else {"max_diffs": 2},
        },
        blobs={"model": checkpoint or default_checkpoint, "plans/training_plan": plan or default_plan},
        admin=admin,
    )


def authenticate(api, name, token=None) -> str:
    data = {"model_name": name, "model_version": "1.0"}
    if token is not None:
        data["auth_token"] = token
    answer = api.call("authenticate", data)
    assert answer.status == 200, answer.body
    return answer.body["worker_id"]


def accepted(api, name, **speeds):
    worker_id = authenticate(api, name)
    answer = api.call("cycle-request", {"worker_id": worker_id, "model": name, "version": "1.0",
                                        **speeds})
    assert answer.status == 200 and answer.body["status"] == "accepted", answer.body
    return worker_id, answer.body


def report(api, worker_id, request_key, diff: bytes, num_samples=10, metrics=None):
    data = {"worker_id": worker_id, "request_key": request_key, "num_samples": num_samples}
    if metrics is not None:
        data["metrics"] = metrics
    return api.call("report", data, blobs={"diff": diff})


def good_diff(seed=0) -> bytes:
    return tensors.encode(random_diff(logistic_regression()[1], seed))


# --------------------------------------------------------------------------- host-training


def test_host_training_creates_process_with_checkpoint_one(api):
    name = unique_name()
    answer = host(api, name)
    assert answer.status == 200, answer.body
    assert answer.body["checkpoint"] == 1 and answer.body["model"] == name
    assert set(answer.body["plans"]) == {"training_plan"}
    listing = api.call("processes", admin=True)
    hosted = [p for p in listing.body["processes"] if p["model"] == name]
    assert hosted and hosted[0]["cycle"]["sequence"] == 1 and hosted[0]["cycle"]["status"] == "open"


def test_host_training_needs_the_admin_token(api):
    answer = host(api, admin=False)
    assert (answer.status, answer.error_code) == (401, "admin_token_required")
    answer = api.call("processes", authorization="Bearer wrong")
    assert (answer.status, answer.error_code) == (403, "admin_token_invalid")


def test_host_training_refuses_a_duplicate_name_and_version(api):
    name = unique_name()
    assert host(api, name).status == 200
    answer = host(api, name)
    assert (answer.status, answer.error_code) == (409, "process_exists")


def test_failed_hosting_leaves_nothing_behind(api):
    name = unique_name()
    answer = host(api, name, plan=b"not a plan")
    assert (answer.status, answer.error_code) == (400, "plan_invalid")
    listing = api.call("processes", admin=True)
    assert name not in [p["model"] for p in listing.body["processes"]]
    # The name is still free: the failure did not half-create the process.
    assert host(api, name).status == 200


def test_host_training_validates_checkpoint_plan_and_configs(api):
    answer = host(api, checkpoint=b"\x00" * 16)
    assert (answer.status, answer.error_code) == (400, "checkpoint_invalid")
    wrong_shapes = tensors.encode({n: np.zeros((3,) + v.shape, v.dtype)
                                   for n, v in tensors.decode(logistic_regression()[1]).items()})
    answer = host(api, checkpoint=wrong_shapes)
    assert (answer.status, answer.error_code) == (400, "plan_invalid")
    assert answer.body["error"]["details"]["reason"] == "plan_checkpoint_mismatch"
    answer = host(api, server_config={"max_diffs": 0})
    assert (answer.status, answer.error_code) == (400, "server_config_invalid")
    answer = host(api, server_config={"pool_selection": "best"})
    assert (answer.status, answer.error_code) == (400, "server_config_invalid")
    answer = host(api, server_config={"authentication": {"type": "jwt", "algorithms": ["none"]}})
    assert (answer.status, answer.error_code) == (400, "server_config_invalid")


# --------------------------------------------------------------------------- authenticate


def test_authenticate_open_process_and_unknown_model(api):
    name = unique_name()
    host(api, name)
    answer = api.call("authenticate", {"model_name": name, "model_version": "1.0"})
    assert answer.status == 200
    assert answer.body["worker_id"] and answer.body["requires_speed_test"] is False
    answer = api.call("authenticate", {"model_name": "no-such-model"})
    assert (answer.status, answer.error_code) == (404, "process_unknown")


def _jwt_process(api, settings):
    name = unique_name("jwt")
    assert host(api, name, server_config={"max_diffs": 2, "authentication": settings}).status == 200
    return name


def _auth_code(api, name, token):
    answer = api.call("authenticate", {"model_name": name, "model_version": "1.0",
                                       "auth_token": token})
    return answer.status, (answer.error_code if answer.status != 200 else "ok")


def test_authenticate_hs256_allow_list_and_expiry(api):
    secret = "a-test-secret-that-is-long-enough-for-hs512-keys-0123456789abcdef"
    name = _jwt_process(api, {"type": "jwt", "secret": secret, "algorithms": ["HS256"]})
    soon = int(time.time()) + 300
    good = jwt.encode({"sub": "device-1", "exp": soon}, secret, algorithm="HS256")
    assert _auth_code(api, name, good) == (200, "ok")
    assert _auth_code(api, name, None) == (401, "auth_token_required")
    forged = jwt.encode({"sub": "x", "exp": soon}, "another-secret-that-is-also-long-enough-for-hs256-0123456789", algorithm="HS256")
    assert _auth_code(api, name, forged) == (401, "auth_token_invalid")
    other_algorithm = jwt.encode({"sub": "x", "exp": soon}, secret, algorithm="HS512")
    assert _auth_code(api, name, other_algorithm) == (401, "auth_algorithm_not_allowed")
    unsigned = jwt.encode({"sub": "x", "exp": soon}, None, algorithm="none")
    assert _auth_code(api, name, unsigned) == (401, "auth_algorithm_not_allowed")
    expired = jwt.encode({"sub": "x", "exp": int(time.time()) - 10}, secret, algorithm="HS256")
    assert _auth_code(api, name, expired) == (401, "auth_token_expired")
    no_expiry = jwt.encode({"sub": "x"}, secret, algorithm="HS256")
    assert _auth_code(api, name, no_expiry) == (401, "auth_token_invalid")
    assert _auth_code(api, name, "not.a.jwt") == (401, "auth_token_invalid")


def test_authenticate_rs256_refuses_key_confusion(api):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    name = _jwt_process(api, {"type": "jwt", "public_key": public_pem, "algorithms": ["RS256"]})
    soon = int(time.time()) + 300
    assert _auth_code(api, name, jwt.encode({"exp": soon}, key, algorithm="RS256")) == (200, "ok")
    # The classic attack: an HMAC token whose secret is the (public) RSA key. PyJWT will not
    # sign one, so it is assembled by hand.
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = header + "." + b64(json.dumps({"exp": soon}).encode())
    signature = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(signature)}"
    assert _auth_code(api, name, forged) == (401, "auth_algorithm_not_allowed")


# --------------------------------------------------------------------------- cycle-request


def test_cycle_request_accepts_with_everything_a_device_needs(api):
    name = unique_name()
    hosted = host(api, name).body
    worker_id, body = accepted(api, name)
    assert body["model_id"] == hosted["model_id"] and body["plans"] == hosted["plans"]
    assert body["client_config"]["batch_size"] == 16 and body["checkpoint"] == 1
    assert body["request_key"] and body["cycle"] == 1 and body["timeout"] > 0
    # One assignment per worker per cycle: asking again hands back the same place.
    again = api.call("cycle-request", {"worker_id": worker_id, "model": name, "version": "1.0"})
    assert again.body["request_key"] == body["request_key"]


def test_worker_id_is_bound_to_its_process(api):
    first, second = unique_name(), unique_name()
    host(api, first)
    host(api, second)
    worker_id = authenticate(api, first)
    answer = api.call("cycle-request", {"worker_id": worker_id, "model": second, "version": "1.0"})
    assert (answer.status, answer.error_code) == (403, "worker_process_mismatch")
    answer = api.call("cycle-request", {"worker_id": "nobody", "model": first, "version": "1.0"})
    assert (answer.status, answer.error_code) == (404, "worker_unknown")


def test_speed_gates_in_mbit_per_second_and_milliseconds(api):
    name = unique_name()
    host(api, name, server_config={"max_diffs": 2, "minimum_download_speed": 10,
                                   "minimum_upload_speed": 5, "maximum_ping": 100})
    answer = api.call("authenticate", {"model_name": name, "model_version": "1.0"})
    assert answer.body["requires_speed_test"] is True
    worker_id = answer.body["worker_id"]
    request = {"worker_id": worker_id, "model": name, "version": "1.0"}
    answer = api.call("cycle-request", request)
    assert (answer.status, answer.error_code) == (400, "speed_test_required")
    assert set(answer.body["error"]["details"]["missing"]) == {"ping", "download", "upload"}
    slow = api.call("cycle-request", {**request, "ping": 20, "download": 2.5, "upload": 50})
    assert slow.body["status"] == "rejected" and slow.body["reason"] == "download_too_slow"
    assert isinstance(slow.body["timeout"], float) and slow.body["timeout"] > 0
    if api.transport == "http":
        assert int(slow.headers["Retry-After"]) >= 1
    fast = api.call("cycle-request", {**request, "ping": 20, "download": 12, "upload": 6})
    assert fast.body["status"] == "accepted"


def test_max_workers_rejects_with_numeric_timeout(api):
    name = unique_name()
    host(api, name, server_config={"max_diffs": 1, "max_workers": 1, "cycle_length": 600})
    accepted(api, name)
    worker_id = authenticate(api, name)
    answer = api.call("cycle-request", {"worker_id": worker_id, "model": name, "version": "1.0"})
    assert answer.body["status"] == "rejected" and answer.body["reason"] == "cycle_full"
    # Nothing observed yet (no report, no earlier cycle): a probe interval of a tenth of the
    # cycle, at most 60 s, plus jitter; never the 600 s to the deadline.
    assert isinstance(answer.body["timeout"], float)
    assert 60 <= answer.body["timeout"] <= 60 * 1.1


def test_invalid_speed_values_are_refused(api):
    name = unique_name()
    host(api, name)
    worker_id = authenticate(api, name)
    answer = api.call("cycle-request", {"worker_id": worker_id, "model": name, "download": "fast"})
    assert (answer.status, answer.error_code) == (400, "invalid_request")


# --------------------------------------------------------------------------- downloads


def test_get_model_and_plan_need_a_valid_request_key(api):
    name = unique_name()
    hosted = host(api, name).body
    plan_bytes, checkpoint_bytes = logistic_regression()
    worker_id, body = accepted(api, name)
    key = {"worker_id": worker_id, "request_key": body["request_key"]}
    model = api.call("get-model", {**key, "model_id": body["model_id"]})
    assert model.status == 200 and model.content == checkpoint_bytes
    plan = api.call("get-plan", {**key, "plan_id": hosted["plans"]["training_plan"]})
    assert plan.status == 200 and plan.content == plan_bytes

    wrong_key = api.call("get-model", {**key, "request_key": "guess"})
    assert (wrong_key.status, wrong_key.error_code) == (403, "request_key_invalid")
    other_worker, _ = accepted(api, name)
    stolen = api.call("get-model", {**key, "worker_id": other_worker})
    assert (stolen.status, stolen.error_code) == (403, "request_key_invalid")
    wrong_model = api.call("get-model", {**key, "model_id": body["model_id"] + 10_000})
    assert (wrong_model.status, wrong_model.error_code) == (404, "model_unknown")
    wrong_plan = api.call("get-plan", {**key, "plan_id": 10_000_000})
    assert (wrong_plan.status, wrong_plan.error_code) == (404, "plan_unknown")


# --------------------------------------------------------------------------- report


def test_report_then_duplicate_is_refused_not_overwritten(api):
    name = unique_name()
    host(api, name, server_config={"max_diffs": 3})
    worker_id, body = accepted(api, name)
    answer = report(api, worker_id, body["request_key"], good_diff(1), metrics={"loss": 0.5})
    assert answer.status == 200 and answer.body["status"] == "success"
    again = report(api, worker_id, body["request_key"], good_diff(2))
    assert (again.status, again.error_code) == (409, "report_duplicate")


@pytest.mark.parametrize(
    "mutate, code",
    [
        (lambda d: {k: np.zeros((2,) + v.shape, v.dtype) for k, v in d.items()}, "diff_mismatch"),
        (lambda d: {k: v.astype(np.float64) for k, v in d.items()}, "diff_mismatch"),
        (lambda d: dict(list(d.items())[1:]), "diff_mismatch"),
        (lambda d: {**d, "extra": np.zeros(3, np.float32)}, "diff_mismatch"),
        (lambda d: {k: np.full(v.shape, np.nan, v.dtype) for k, v in d.items()}, "diff_not_finite"),
        (lambda d: {k: np.full(v.shape, np.inf, v.dtype) for k, v in d.items()}, "diff_not_finite"),
    ],
    ids=["shape", "dtype", "missing", "unexpected", "nan", "inf"],
)
def test_report_validates_the_diff_against_the_model(api, mutate, code):
    name = unique_name()
    host(api, name)
    worker_id, body = accepted(api, name)
    diff = mutate(random_diff(logistic_regression()[1], 0))
    answer = report(api, worker_id, body["request_key"], tensors.encode(diff))
    assert (answer.status, answer.error_code) == (400, code)
    # A refused report does not use up the assignment.
    assert report(api, worker_id, body["request_key"], good_diff()).status == 200


def test_report_refuses_garbage_bad_samples_and_metrics(api):
    name = unique_name()
    host(api, name)
    worker_id, body = accepted(api, name)
    key = body["request_key"]
    assert report(api, worker_id, key, b"garbage!" * 4).error_code == "diff_malformed"
    assert report(api, worker_id, key, good_diff(), num_samples=0).error_code == "num_samples_invalid"
    assert report(api, worker_id, key, good_diff(), metrics={"loss": "low"}).error_code == (
        "metrics_invalid"
    )
    assert report(api, worker_id, "guess", good_diff()).error_code == "request_key_invalid"


def test_late_report_after_the_cycle_closed(api):
    name = unique_name()
    host(api, name, server_config={"max_diffs": 1, "max_workers": 2})
    first, first_body = accepted(api, name)
    late, late_body = accepted(api, name)
    assert report(api, first, first_body["request_key"], good_diff(1)).status == 200
    answer = report(api, late, late_body["request_key"], good_diff(2))
    assert (answer.status, answer.error_code) == (409, "cycle_closed")
    download = api.call("get-model", {"worker_id": late, "request_key": late_body["request_key"]})
    assert (download.status, download.error_code) == (409, "cycle_closed")


def test_pygrid_json_report_with_base64_diff(api):
    name = unique_name()
    host(api, name)
    worker_id, body = accepted(api, name)
    payload = {"worker_id": worker_id, "request_key": body["request_key"], "num_samples": 4,
               "diff": base64.b64encode(good_diff()).decode()}
    if api.transport == "http":
        answer = api.session.post(f"{api.url}/model-centric/report", json=payload, timeout=30)
        assert answer.status_code == 200 and answer.json()["status"] == "success"
    else:
        reply = json.loads(api.send_raw(json.dumps({"type": "model-centric/report",
                                                    "request_id": "r1", "data": payload})))
        assert reply["request_id"] == "r1" and reply["data"]["status"] == "success"


# --------------------------------------------------------------------------- checkpoints


def test_retrieve_model_and_list_checkpoints(api):
    name = unique_name()
    host(api, name, server_config={"max_diffs": 1})
    worker_id, body = accepted(api, name)
    assert report(api, worker_id, body["request_key"], good_diff()).status == 200
    listing = api.call("checkpoints", {"name": name, "version": "1.0"}, admin=True)
    assert [c["number"] for c in listing.body["checkpoints"]] == [1, 2]
    assert listing.body["latest"] == 2
    first = api.call("retrieve-model", {"name": name, "version": "1.0", "checkpoint": 1}, admin=True)
    assert first.content == logistic_regression()[1]
    latest = api.call("retrieve-model", {"name": name, "checkpoint": "latest"}, admin=True)
    assert latest.status == 200 and latest.content != first.content
    missing = api.call("retrieve-model", {"name": name, "checkpoint": 7}, admin=True)
    assert (missing.status, missing.error_code) == (404, "checkpoint_unknown")
    anonymous = api.call("retrieve-model", {"name": name})
    assert (anonymous.status, anonymous.error_code) == (401, "admin_token_required")


# --------------------------------------------------------------------------- malformed input


def test_malformed_json_and_unknown_event(api, shared_node):
    if api.transport == "http":
        import requests

        answer = requests.post(f"{shared_node.url}/model-centric/authenticate", data="{nope",
                               headers={"Content-Type": "application/json"}, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
        answer = requests.post(f"{shared_node.url}/model-centric/authenticate", json=[1, 2],
                               timeout=10)
        assert answer.json()["error"]["code"] == "invalid_request"
        answer = requests.get(f"{shared_node.url}/model-centric/nothing", timeout=10)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
        answer = requests.get(f"{shared_node.url}/model-centric/report", timeout=10)
        assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"
    else:
        reply = json.loads(api.send_raw("{nope"))
        assert reply["data"]["error"]["code"] == "invalid_json"
        reply = json.loads(api.send_raw(json.dumps({"type": "model-centric/fly", "request_id": 1})))
        assert reply["data"]["error"]["code"] == "unknown_event" and reply["request_id"] == 1
        reply = json.loads(api.send_raw(b"\x01\x02\x03"))
        assert reply["data"]["error"]["code"] == "invalid_frame"
