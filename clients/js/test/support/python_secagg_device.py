"""A Python device for the JS SDK's mixed secure-cycle test (test/secagg.test.js).

    python python_secagg_device.py <node url> <model name> honest <diff output path>
    python python_secagg_device.py <node url> <model name> drop

`honest` takes a place and reports a small seeded diff through the Python SDK (which runs the
SecAgg rounds), then writes the diff (safetensors) for the test to compute the expected mean.
`drop` takes a place, advertises and shares its keys, then vanishes.
"""

from __future__ import annotations

import base64
import sys

import numpy as np

from fedgrid import Client
from fedgrid_plans import tensors
from fedgrid_protocol.configs import SecureAggregation
from fedgrid_protocol.secagg import SecAggDevice, wire


def drop_after_sharing_keys(job, assignment) -> None:
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


def main(url: str, name: str, mode: str, output: str | None = None) -> None:
    with Client(url) as client:
        job = client.new_job(name, "1.0")
        assignment = job.request(wait=20)
        if mode == "drop":
            drop_after_sharing_keys(job, assignment)
            return
        rng = np.random.default_rng(7)
        diff = {key: (rng.standard_normal(value.shape) * 0.01).astype(np.float32)
                for key, value in assignment.parameters().items()}
        answer = assignment.report(diff=diff, num_samples=1)
        assert answer["secure"] is True, answer
        with open(output, "wb") as out:
            out.write(tensors.encode(diff))


if __name__ == "__main__":
    main(*sys.argv[1:])
