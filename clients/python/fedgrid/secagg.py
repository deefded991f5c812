"""The device's part in a secure cycle (docs/secure-aggregation.md): instead of sending its diff
in the clear, it runs the SecAgg+ rounds with the Node, and the Node learns only the sum.

`Assignment.report` comes here when the assignment carries `secure_aggregation`. The protocol
itself (keys, shares, masks, quantisation, the differentially private clip) is
`fedgrid_protocol.secagg`'s, shared with the Node.
The rounds travel as events over the job's transport: the device long-polls `secagg-round` for
the round the cycle is in and sends its message for each round once.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import numpy as np

from fedgrid_protocol.configs import SecureCycleSettings
from fedgrid_protocol.secagg import SecAggDevice
from fedgrid_protocol.secagg.clip import clip_to_norm

if TYPE_CHECKING:
    from .jobs import Assignment

ROUND_WAIT_SECONDS = 20.0  # each long-poll of secagg-round (the Node holds at most 30)


def flatten(diff: dict[str, np.ndarray]) -> np.ndarray:
    """The update as one vector: the model's tensors by name, each row-major (the wire order)."""
    return np.concatenate([np.asarray(diff[name], dtype=np.float64).reshape(-1)
                           for name in sorted(diff)])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def report_securely(assignment: Assignment, diff: dict[str, np.ndarray]) -> dict[str, Any]:
    """Run the rounds until this device has sent its unmask shares (its part is then done: the
    Node closes the cycle once enough devices have). Raises AssignmentExpired when the device
    missed a round or the Node aborted the cycle's secure aggregation."""
    transport = assignment.job.transport
    ids = {"worker_id": assignment.job.worker_id, "request_key": assignment.request_key}
    settings = SecureCycleSettings(**assignment.secure_aggregation)
    device = SecAggDevice(settings.params())
    # Differential privacy (clip_at: device): the Node only noises the sum, so the clip that
    # bounds each device's influence happens here, before quantisation and masking.
    update = clip_to_norm(flatten(diff), settings.clip_norm)
    while True:
        view = transport.call("secagg-round", {**ids, "wait": ROUND_WAIT_SECONDS})
        stage = view["round"]
        if stage in ("cohort", "done") or view["sent"]:
            continue  # places still being taken, or waiting for the others
        if stage == "advertise-keys":
            c_public, s_public = device.advertise_keys()
            transport.call("secagg-advertise-keys",
                           {**ids, "c_public": _b64(c_public), "s_public": _b64(s_public)})
        elif stage == "share-keys":
            roster = {int(index): (base64.b64decode(c), base64.b64decode(s))
                      for index, (c, s) in view["roster"].items()}
            boxes = device.share_keys(view["index"], roster, view["neighbours"])
            transport.call("secagg-share-keys",
                           {**ids, "boxes": {str(v): _b64(box) for v, box in boxes.items()}})
        elif stage == "masked-input":
            boxes = {int(v): base64.b64decode(box) for v, box in view["boxes"].items()}
            transport.call("secagg-masked-input", ids,
                           blobs={"masked_input": device.masked_input(update, boxes)})
        elif stage == "unmask":
            shares = device.unmask(view["survivors"], view["dropped"])
            transport.call("secagg-unmask",
                           {**ids, "shares": {str(v): _b64(s) for v, s in shares.items()}})
            return {"status": "success", "cycle": assignment.cycle, "secure": True}
