"""The device's part in a secure cycle (docs/secure-aggregation.md): instead of sending its diff
in the clear, it runs the SecAgg+ rounds with the Node, and the Node learns only the sum.

`Assignment.report` comes here when the assignment carries `secure_aggregation`. The protocol
itself (keys, shares, masks, quantisation, the differentially private clip) is
`fedgrid_protocol.secagg`'s, shared with the Node.
The rounds travel as events over the job's transport: the device long-polls `secagg-round` for
the round the cycle is in and sends its message for each round once. The Node keeps the rounds
across a restart, so a lost connection is no reason to give up: until the assignment's deadline
the device asks again, and sends the very message it had made (a device's secrets allow one
message per round; the Node answers a repeated one as it did the first time).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from fedgrid_protocol.configs import SecureCycleSettings
from fedgrid_protocol.secagg import SecAggDevice, wire
from fedgrid_protocol.secagg.clip import clip_to_norm

from .errors import NetworkUnreachable

if TYPE_CHECKING:
    from .jobs import Assignment

ROUND_WAIT_SECONDS = 20.0  # each long-poll of secagg-round (the Node holds at most 30)
RECONNECT_SECONDS = 1.0  # between attempts once the transport's own retries gave up


def flatten(diff: dict[str, np.ndarray]) -> np.ndarray:
    """The update as one vector: the model's tensors by name, each row-major (the wire order)."""
    return np.concatenate([np.asarray(diff[name], dtype=np.float64).reshape(-1)
                           for name in sorted(diff)])


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
    give_up = time.monotonic() + (assignment.timeout or 0.0)

    def call(event: str, fields: dict[str, Any], blobs: dict[str, bytes] | None = None):
        return _until_reached(lambda: transport.call(event, fields, blobs=blobs), give_up)

    messages: dict[str, tuple[str, dict[str, Any], dict[str, bytes] | None]] = {}
    while True:
        # Of the roster, only the keys this device uses: its neighbours' (and its own).
        view = call("secagg-round", {**ids, "wait": ROUND_WAIT_SECONDS, "roster": "neighbours"})
        stage = view["round"]
        if stage in ("cohort", "done") or view["sent"]:
            continue  # places still being taken, or waiting for the others
        if stage not in messages:  # made once: a retry sends the same message again
            messages[stage] = round_message(device, stage, view, ids, update)
        call(*messages[stage])
        if stage == "unmask":
            return {"status": "success", "cycle": assignment.cycle, "secure": True}


def round_message(device: SecAggDevice, stage: str, view: dict[str, Any], ids: dict[str, str],
                  update: np.ndarray) -> tuple[str, dict[str, Any], dict[str, bytes] | None]:
    """(event, fields, blobs) of this device's message for the round `view` describes: its bytes
    are the event's one binary field (fedgrid_protocol.secagg.wire has the layouts)."""
    if stage == "advertise-keys":
        return "secagg-advertise-keys", ids, {"public_keys": wire.encode_keys(*device.advertise_keys())}
    if stage == "share-keys":
        roster = {int(index): (base64.b64decode(c), base64.b64decode(s))
                  for index, (c, s) in view["roster"].items()}
        boxes = device.share_keys(view["index"], roster, view["neighbours"],
                                  view.get("advertised"))
        return "secagg-share-keys", ids, {"boxes": wire.encode_entries(boxes)}
    if stage == "masked-input":
        boxes = {int(v): base64.b64decode(box) for v, box in view["boxes"].items()}
        return ("secagg-masked-input", ids,
                {"masked_input": device.masked_input(update, boxes)})
    if stage == "unmask":
        shares = device.unmask(view["survivors"], view["dropped"])
        return "secagg-unmask", ids, {"shares": wire.encode_entries(shares)}
    raise ValueError(f"the Node named an unknown secure aggregation round: {stage!r}")


def _until_reached(attempt: Callable[[], dict[str, Any]], give_up: float) -> dict[str, Any]:
    """`attempt()`, again while the Node cannot be reached (restarting, or a network outage)
    and the assignment's deadline has not passed: its rounds wait for it meanwhile."""
    while True:
        try:
            return attempt()
        except NetworkUnreachable:
            if time.monotonic() + RECONNECT_SECONDS >= give_up:
                raise
            time.sleep(RECONNECT_SECONDS)
