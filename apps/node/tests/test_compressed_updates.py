"""Compressed updates in a real Node: float16 and int8 diffs are accepted only from processes that
chose them, decoded to float32 within the documented bound, folded, kept across a kill -9, and
every malformed scale or wrong encoding is refused with its code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedgrid.diff_encoding import encode_diff, int8_quantize
from fedgrid_node.cycles.diff_encoding import decode_checked
from fedgrid_plans import tensors
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, random_diff, unique_name

from .test_cycle_engine import request_place, wait_for

VECTOR = Path(__file__).resolve().parents[3] / "plans" / "conformance" / "diff_encoding"


@pytest.fixture
def api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def host(api, name, encoding=None, *, checkpoint=None, **server_config):
    plan, default_checkpoint = logistic_regression()
    client_config = {"batch_size": 8}
    if encoding is not None:
        client_config["diff_encoding"] = encoding
    return api.call(
        "host-training",
        {"name": name, "version": "1", "client_config": client_config,
         "server_config": server_config},
        blobs={"model": checkpoint or default_checkpoint, "plans/training_plan": plan},
        admin=True,
    )


def send(api, worker, body, diff_bytes, num_samples=10):
    return api.call("report", {"worker_id": worker, "request_key": body["request_key"],
                               "num_samples": num_samples}, blobs={"diff": diff_bytes})


def checkpoint(api, name, number):
    return tensors.decode(api.call("retrieve-model", {"name": name, "checkpoint": number},
                                   admin=True).content)


def dequantized(diff, encoding):
    """What the Node must fold: the documented decoding of the SDK's encoding."""
    if encoding == "float16":
        return {k: v.astype(np.float16).astype(np.float32) for k, v in diff.items()}
    decoded = {}
    for name, value in diff.items():
        codes, scale = int8_quantize(value)
        decoded[name] = codes.astype(np.float32) * scale
    return decoded


# --------------------------------------------------------------------------- decoding bound


def vector_spec(diff):
    return {name: (value.shape, value.dtype) for name, value in diff.items()}


def test_the_shared_vector_decodes_within_the_documented_bounds():
    diff = tensors.decode((VECTOR / "diff.safetensors").read_bytes())
    spec = vector_spec(diff)
    half = decode_checked(spec, tensors.decode((VECTOR / "float16.safetensors").read_bytes()),
                          "float16")
    int8_received = tensors.decode((VECTOR / "int8.safetensors").read_bytes())
    int8 = decode_checked(spec, int8_received, "int8")
    for name, x in diff.items():
        x64 = x.astype(np.float64)
        assert half[name].dtype == np.float32 and int8[name].dtype == np.float32
        # float16: relative 2^-11 where float16 is normal (2^-14 .. 65504), absolute 2^-25 below.
        normal = (np.abs(x64) >= 2.0**-14) & (np.abs(x64) <= 65504)
        error = np.abs(half[name].astype(np.float64) - x64)
        assert np.all(error[normal] <= np.abs(x64[normal]) * 2.0**-11), name
        assert np.all(error[np.abs(x64) < 2.0**-14] <= 2.0**-25), name
        # int8: at most s/2 per element (plus the two float32 roundings of x / s and q * s).
        scale = float(int8_received[name + ".__scale__"])
        if scale == 0:
            assert not int8[name].any(), name
            continue
        bound = scale / 2 * (1 + 2.0**-20) + np.abs(x64) * 2.0**-23
        assert np.all(np.abs(int8[name].astype(np.float64) - x64) <= bound), name
    # Ties go to the even code (numpy's rint), as documented: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2.
    assert int8_received["ties"].tolist() == [127, 0, 2, 2, 0, -2, -126, 126, 3]


# --------------------------------------------------------------------------- negotiation


def test_the_encoding_is_a_client_config_key_devices_receive(api):
    name = unique_name()
    refused = host(api, name, "int4")
    assert (refused.status, refused.error_code) == (400, "client_config_invalid")
    assert refused.body["error"]["details"]["field"] == "client_config.diff_encoding"
    assert host(api, name, "int8").status == 200
    _, body = request_place(api, name)
    assert body["client_config"]["diff_encoding"] == "int8"


def test_a_checkpoint_may_not_use_the_scale_suffix(api):
    refused = host(api, unique_name(), "int8", checkpoint=tensors.encode(
        {"w": np.zeros(3, np.float32), "w.__scale__": np.zeros((), np.float32)}))
    assert (refused.status, refused.error_code) == (400, "checkpoint_invalid")


@pytest.mark.parametrize("encoding", ["float16", "int8"])
def test_an_encoded_report_is_decoded_and_folded(api, encoding):
    name = unique_name()
    assert host(api, name, encoding, max_diffs=2).status == 200
    start = checkpoint(api, name, 1)
    diffs = [(random_diff(logistic_regression()[1], seed), n) for seed, n in ((1, 10), (2, 30))]
    for diff, num_samples in diffs:
        worker, body = request_place(api, name)
        encoded = encode_diff(diff, encoding)
        assert len(encoded) < len(tensors.encode(diff)) * (0.6 if encoding == "float16" else 0.35)
        answer = send(api, worker, body, encoded, num_samples)
        assert answer.status == 200, answer.body
    wait_for(lambda: api.call("checkpoints", {"name": name}, admin=True).body["latest"] == 2,
             "checkpoint 2")
    after = checkpoint(api, name, 2)
    for key, value in start.items():
        average = sum(dequantized(d, encoding)[key].astype(np.float64) * n for d, n in diffs) / 40
        np.testing.assert_allclose(after[key], (value - average).astype(np.float32),
                                   rtol=0, atol=5e-8)


def test_the_hosted_averaging_plan_reads_stored_int8_reports_decoded(api):
    name = unique_name()
    plan, start_bytes = logistic_regression()
    answer = api.call(
        "host-training",
        {"name": name, "version": "1", "client_config": {"diff_encoding": "int8"},
         "server_config": {"max_diffs": 2, "strategy": "hosted_averaging_plan"}},
        blobs={"model": start_bytes, "plans/training_plan": plan, "averaging_plan": plan},
        admin=True)
    assert answer.status == 200, answer.body
    diffs = [random_diff(start_bytes, seed) for seed in (4, 5)]
    for diff in diffs:
        worker, body = request_place(api, name)
        assert send(api, worker, body, encode_diff(diff, "int8")).status == 200
    wait_for(lambda: api.call("checkpoints", {"name": name}, admin=True).body["latest"] == 2,
             "checkpoint 2")
    after = checkpoint(api, name, 2)
    for key, value in tensors.decode(start_bytes).items():
        unweighted = sum(dequantized(d, "int8")[key].astype(np.float64) for d in diffs) / 2
        np.testing.assert_allclose(after[key], value - unweighted, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- refusals


def _scale_of_first(diff):
    return next(iter(diff)) + ".__scale__"


REFUSALS = {
    # process encoding, diff bytes (of a random diff d), code
    "float32 to an int8 process": ("int8", lambda d: tensors.encode(d), "diff_encoding_mismatch"),
    "float16 to an int8 process": ("int8", lambda d: encode_diff(d, "float16"),
                                   "diff_encoding_mismatch"),
    "int8 to a float32 process": (None, lambda d: encode_diff(d, "int8"), "diff_encoding_mismatch"),
    "float32 to a float16 process": ("float16", lambda d: tensors.encode(d),
                                     "diff_encoding_mismatch"),
    "int8 without a scale": ("int8", lambda d: _drop_scale(d), "diff_mismatch"),
    "NaN scale": ("int8", lambda d: _set_scale(d, np.float32(np.nan)), "diff_scale_invalid"),
    "infinite scale": ("int8", lambda d: _set_scale(d, np.float32(np.inf)), "diff_scale_invalid"),
    "negative scale": ("int8", lambda d: _set_scale(d, np.float32(-0.5)), "diff_scale_invalid"),
    "float64 scale": ("int8", lambda d: _set_scale(d, np.float64(0.5)), "diff_scale_invalid"),
    "scale of shape [1]": ("int8", lambda d: _set_scale(d, np.ones(1, np.float32)),
                           "diff_scale_invalid"),
    "int8 of another shape": ("int8", lambda d: _reshape_first(d), "diff_mismatch"),
    "float16 infinity": ("float16", lambda d: encode_diff({k: v * np.float32(1e9)
                                                           for k, v in d.items()}, "float16"),
                         "diff_not_finite"),
    # 127 x 1e34 x 10 samples > 1e36; a scale so large that q x s overflows float32 is
    # diff_not_finite (the decoded diff holds infinity).
    "int8 scale beyond the range": ("int8", lambda d: _set_scale(d, np.float32(1e34)),
                                    "diff_out_of_range"),
    "int8 scale overflowing float32": ("int8", lambda d: _set_scale(d, np.float32(1e37)),
                                       "diff_not_finite"),
}


def _tensors_of(diff):
    return {k: np.array(v) for k, v in tensors.decode(encode_diff(diff, "int8")).items()}


def _drop_scale(diff):
    encoded = _tensors_of(diff)
    del encoded[_scale_of_first(diff)]
    return tensors.encode(encoded)


def _set_scale(diff, scale):
    encoded = _tensors_of(diff)
    encoded[_scale_of_first(diff)] = np.asarray(scale)
    return tensors.encode(encoded)


def _reshape_first(diff):
    encoded = _tensors_of(diff)
    first = next(iter(diff))
    encoded[first] = encoded[first].reshape(-1)
    return tensors.encode(encoded)


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_wrong_encoding_or_scale_is_refused_with_its_code(api, case):
    encoding, make, code = REFUSALS[case]
    name = unique_name()
    assert host(api, name, encoding).status == 200
    worker, body = request_place(api, name)
    diff = random_diff(logistic_regression()[1], 0)
    answer = send(api, worker, body, make(diff))
    assert (answer.status, answer.error_code) == (400, code), answer.body
    if code == "diff_encoding_mismatch":
        assert answer.body["error"]["details"]["expected"] == (encoding or "float32")
    # A refused report does not use up the assignment: the right encoding is then taken.
    assert send(api, worker, body, encode_diff(diff, encoding)).status == 200


# --------------------------------------------------------------------------- durability


@pytest.mark.parametrize("backend", database_backends())
def test_int8_reports_stored_as_received_are_refolded_after_kill_9(node_factory, backend):
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    assert host(api, "durable-int8", "int8", max_diffs=3, cycle_length=600).status == 200
    start = checkpoint(api, "durable-int8", 1)
    diffs = [(random_diff(logistic_regression()[1], seed), 5 + seed) for seed in range(3)]
    for index, (diff, num_samples) in enumerate(diffs):
        worker, body = request_place(api, "durable-int8")
        assert send(api, worker, body, encode_diff(diff, "int8"), num_samples).status == 200
        if index < 2:  # the first two reports are folded again from the database
            node.kill()
            node = node.restart()
            api = HttpApi(node.url, node.admin_token)
    wait_for(lambda: api.call("checkpoints", {"name": "durable-int8"},
                              admin=True).body["latest"] == 2, "checkpoint 2")
    after = checkpoint(api, "durable-int8", 2)
    total = sum(n for _, n in diffs)
    for key, value in start.items():
        average = sum(dequantized(d, "int8")[key].astype(np.float64) * n for d, n in diffs) / total
        np.testing.assert_allclose(after[key], (value - average).astype(np.float32),
                                   rtol=0, atol=5e-8)
    api.close()
    assert "Traceback" not in node.log()
