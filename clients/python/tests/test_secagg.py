"""A secure cycle end to end: a Node and six Python devices, two of which drop after sharing
their keys; the others train and report through `participate()` as in any cycle, and the new
checkpoint is the plain average of their updates within the quantisation error."""

from __future__ import annotations

import base64
import threading

import numpy as np
import pytest

from fedgrid import Admin, Client
from fedgrid_protocol.configs import SecureAggregation
from fedgrid_protocol.secagg import SecAggDevice, wire
from fedgrid_protocol.secagg.quantize import step

HONEST, DROPPING = 4, 2
SETTINGS = {"round_timeout": 2.0}


def drop_after_sharing_keys(job) -> None:
    """A device that takes a place, advertises and shares its keys, then vanishes."""
    assignment = job.request(wait=10)
    ids = {"worker_id": job.worker_id, "request_key": assignment.request_key}
    device = SecAggDevice(SecureAggregation(**assignment.secure_aggregation).params())
    while True:
        view = job.transport.call("secagg-round", {**ids, "wait": 20})
        if view["round"] == "cohort" or view["sent"]:
            continue
        if view["round"] == "advertise-keys":
            job.transport.call("secagg-advertise-keys", ids, blobs={
                "public_keys": wire.encode_keys(*device.advertise_keys())})
        else:
            roster = {int(i): (base64.b64decode(c), base64.b64decode(s))
                      for i, (c, s) in view["roster"].items()}
            boxes = device.share_keys(view["index"], roster, view["neighbours"])
            job.transport.call("secagg-share-keys", ids,
                               blobs={"boxes": wire.encode_entries(boxes)})
            return


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_a_secure_cycle_with_two_dropouts_averages_the_survivors(sdk_node, host, digits,
                                                                transport):
    name = host(server_config={"max_diffs": HONEST + DROPPING - 1,
                               "max_workers": HONEST + DROPPING, "min_diffs": 2,
                               "cycle_length": 300, "num_cycles": 1,
                               "secure_aggregation": SETTINGS})
    features, labels = digits
    results: dict[int, object] = {}
    failures: list[BaseException] = []
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        start = admin.retrieve_model(name)
    with Client(sdk_node.url if transport == "http" else sdk_node.ws_url) as client:
        jobs = [client.new_job(name) for _ in range(HONEST + DROPPING)]

        def honest(index: int) -> None:
            shard = (features[index * 50:(index + 1) * 50], labels[index * 50:(index + 1) * 50])
            try:
                reports = jobs[index].participate(
                    shard, cycles=1, on_report=lambda _, result: results.__setitem__(index, result))
                assert len(reports) == 1
            except BaseException as exc:  # re-raised below, in the test's thread
                failures.append(exc)

        def dropping(index: int) -> None:
            try:
                drop_after_sharing_keys(jobs[index])
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=honest, args=(i,)) for i in range(HONEST)]
        threads += [threading.Thread(target=dropping, args=(i,))
                    for i in range(HONEST, HONEST + DROPPING)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures
    assert sorted(results) == list(range(HONEST))
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        cycle = admin.cycles(name)[0]
        new = admin.retrieve_model(name)
    assert (cycle["status"], cycle["reported"], cycle["new_checkpoint"]) == ("completed", HONEST, 2)
    tolerance = step(SecureAggregation(**SETTINGS).params()) + 1e-6
    for key in start:
        mean = np.mean([results[i].diff[key].astype(np.float64) for i in range(HONEST)], axis=0)
        assert np.abs(new[key] - (start[key] - mean)).max() <= tolerance
