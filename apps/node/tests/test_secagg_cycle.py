"""A secure cycle on a real Node (SQLite and PostgreSQL): devices run the SecAgg+ rounds over
HTTP, one drops after sharing keys, the checkpoint is the survivors' mean update within the
quantisation error, plain reports are refused, and the database never holds an update. Devices
send the binary messages, or older SDKs' base64 JSON forms, in one cycle; malformed binary
messages are refused as `secagg_message_invalid` over HTTP and WebSocket."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from fedgrid_node.db.models import Assignment, Cycle, Process, ReportDiff
from fedgrid_plans import tensors
from fedgrid_protocol.configs import SecureAggregation, SecureCycleSettings
from fedgrid_protocol.secagg import SecAggDevice, wire
from fedgrid_protocol.secagg.clip import clip_to_norm
from fedgrid_protocol.secagg.quantize import step
from tests.support.api_client import HttpApi, WsApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, random_diff, unique_name

from .test_cycle_engine import cycles_of, host, report, wait_for

COHORT = 6


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def flat(diff: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([diff[name].reshape(-1) for name in sorted(diff)])


class Device:
    """A device driving the protocol core over the wire, as an SDK would: each round's bytes as
    the binary body, or with `legacy` as older SDKs did (base64 in JSON, the whole roster)."""

    def __init__(self, url: str, name: str, seed: int, *, checkpoint: bytes | None = None,
                 scale: float = 0.01, legacy: bool = False) -> None:
        self.url = url
        self.legacy = legacy
        self.session = requests.Session()
        self.worker_id = self.post("authenticate", {"model_name": name})["worker_id"]
        self.accepted = self.post("cycle-request", {"worker_id": self.worker_id, "model": name,
                                                    "version": "1"})
        assert self.accepted["status"] == "accepted", self.accepted
        self.settings = SecureCycleSettings(**self.accepted["secure_aggregation"])
        self.core = SecAggDevice(self.settings.params(), rng=np.random.default_rng(seed))
        self.diff = random_diff(checkpoint or logistic_regression()[1], seed, scale)
        self.ids = {"worker_id": self.worker_id, "request_key": self.accepted["request_key"]}

    def post(self, event: str, body: dict | None = None, *, expect: int = 200, **kwargs):
        response = self.session.post(f"{self.url}/model-centric/{event}", json=body, timeout=60,
                                     **kwargs)
        assert response.status_code == expect, response.text
        return response.json()

    def send(self, event: str, message: dict | bytes, *, expect: int = 200) -> dict:
        """A message: JSON fields (a legacy device's), or the binary field's bytes as the body."""
        if isinstance(message, dict):
            return self.post(event, {**self.ids, **message}, expect=expect)
        return self.post(event, None, params=self.ids, data=message, expect=expect,
                         headers={"Content-Type": "application/octet-stream"})

    def round(self, wait: float = 0) -> dict:
        roster = "all" if self.legacy else "neighbours"
        return self.post("secagg-round", {**self.ids, "wait": wait, "roster": roster})

    def advertise(self) -> dict | bytes:
        """Sends this device's keys; returns the message (to send it again)."""
        c_public, s_public = self.core.advertise_keys()
        message = ({"c_public": b64(c_public), "s_public": b64(s_public)} if self.legacy
                   else wire.encode_keys(c_public, s_public))
        self.send("secagg-advertise-keys", message)
        return message

    def share(self, view: dict) -> dict | bytes:
        """Sends this device's share boxes; returns the message (to send it again)."""
        roster = {int(i): (base64.b64decode(c), base64.b64decode(s))
                  for i, (c, s) in view["roster"].items()}
        boxes = self.core.share_keys(view["index"], roster, view["neighbours"],
                                     None if self.legacy else view["advertised"])
        message = ({"boxes": {str(v): b64(box) for v, box in boxes.items()}} if self.legacy
                   else wire.encode_entries(boxes))
        self.send("secagg-share-keys", message)
        return message

    def masked_input(self, view: dict) -> None:
        boxes = {int(v): base64.b64decode(box) for v, box in view["boxes"].items()}
        # As the SDKs do: with differential privacy the device clips before quantising.
        data = self.core.masked_input(clip_to_norm(flat(self.diff), self.settings.clip_norm),
                                      boxes)
        self.send("secagg-masked-input", data)

    def unmask(self, view: dict) -> None:
        shares = self.core.unmask(view["survivors"], view["dropped"])
        self.send("secagg-unmask", {"shares": {str(v): b64(s) for v, s in shares.items()}}
                  if self.legacy else wire.encode_entries(shares))


def database_url(node) -> str:
    return node.env.get("DATABASE_URL") or f"sqlite:///{node.data_dir / 'node.db'}"


@pytest.fixture
def api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def test_a_secure_cycle_with_a_dropout_yields_the_survivors_mean_and_stores_no_update(
        api, shared_node):
    name = unique_name("secagg")
    host(api, name, max_diffs=COHORT - 1, max_workers=COHORT, min_diffs=2, cycle_length=300,
         secure_aggregation={"round_timeout": 1.5})
    # Devices of older SDKs (base64 JSON, the whole roster) take part with binary ones.
    devices = [Device(api.url, name, seed, legacy=seed % 2 == 0) for seed in range(1, COHORT + 1)]
    late = api.call("cycle-request", {"worker_id": api.call("authenticate", {"model_name": name})
                                      .body["worker_id"], "model": name, "version": "1"}).body
    assert (late["status"], late["reason"]) == ("rejected", "cycle_full")  # the cohort is fixed
    # An update in the clear is refused, whoever sends it.
    refused = report(api, devices[0].worker_id, devices[0].accepted, seed=1)
    assert (refused.status, refused.error_code) == (409, "secure_report_refused")

    for device in devices:
        view = device.round()
        assert (view["round"], view["sent"], view["cohort"]) == ("advertise-keys", False, COHORT)
        device.advertise()
    for device in devices:
        view = device.round()
        # 2 ceil(log2 6) = 6 neighbours wanted, 5 exist: the graph is complete at this size.
        assert view["round"] == "share-keys" and len(view["neighbours"]) == COHORT - 1
        assert (view["advertised"], len(view["roster"])) == (COHORT, COHORT)
        device.share(view)
    survivors, gone = devices[:-1], devices[-1]  # the last one drops after sharing its keys
    for device in survivors:
        device.masked_input(device.round())
    # The round closes at its timeout without the dropped device: wait on the Node's answer.
    view = wait_for(lambda: (lambda v: v if v["round"] == "unmask" else None)(
        survivors[0].round(wait=10)), "the unmask round")
    assert view["dropped"] == [COHORT] and view["survivors"] == list(range(1, COHORT))
    gone.post("secagg-round", {**gone.ids, "wait": 0}, expect=409)
    for device in survivors:
        device.unmask(device.round())

    cycle = wait_for(lambda: (lambda c: c if c["status"] == "completed" else None)(
        cycles_of(api, name)[0]), "the secure cycle to complete")
    assert (cycle["reported"], cycle["new_checkpoint"]) == (COHORT - 1, 2)
    start = tensors.decode(logistic_regression()[1])
    after = tensors.decode(api.call("retrieve-model", {"name": name, "checkpoint": 2},
                                    admin=True).content)
    mean = {n: np.mean([d.diff[n].astype(np.float64) for d in survivors], axis=0) for n in start}
    tolerance = step(SecureAggregation().params()) + 1e-6  # one rounding step, float32 storage
    for tensor in start:
        assert np.abs(after[tensor] - (start[tensor] - mean[tensor])).max() <= tolerance
    # The dropped device's update is in no checkpoint: with it the step would differ.
    with_dropped = np.mean([flat(d.diff) for d in devices], axis=0)
    assert np.abs(flat({n: start[n] - after[n] for n in start}) - with_dropped).max() > tolerance

    engine = create_engine(database_url(shared_node).replace("postgresql://",
                                                             "postgresql+pg8000://"))
    try:
        with Session(engine) as session:
            process_id = session.scalar(select(Process.id).where(Process.name == name))
            assignments = select(Assignment.id).join(Cycle).where(Cycle.process_id == process_id)
            assert session.scalar(select(func.count()).select_from(ReportDiff).where(
                ReportDiff.assignment_id.in_(assignments))) == 0
            statuses = session.scalars(select(Assignment.status).join(Cycle)
                                       .where(Cycle.process_id == process_id)).all()
            assert sorted(map(str, statuses)).count("reported") == COHORT - 1
    finally:
        engine.dispose()


def test_secure_aggregation_is_refused_with_too_small_a_cohort(api):
    answer = api.call("host-training", {"name": unique_name(), "version": "1",
                                        "server_config": {"max_diffs": 1, "max_workers": 1,
                                                          "secure_aggregation": True}},
                      blobs={"model": logistic_regression()[1]}, admin=True)
    assert (answer.status, answer.error_code) == (400, "server_config_invalid")


def test_too_few_survivors_abort_the_rounds_and_no_checkpoint_is_made(api):
    name = unique_name("secagg")
    host(api, name, max_diffs=2, max_workers=3, min_diffs=2, cycle_length=300,
         secure_aggregation={"round_timeout": 1.0})
    devices = [Device(api.url, name, seed) for seed in range(1, 4)]
    for device in devices:
        device.round()
        device.advertise()
    for device in devices:
        device.share(device.round())
    devices[0].masked_input(devices[0].round())  # the other two drop: a sum of one is no secret
    # (A Response is falsy for an error status: wait on its body.)
    aborted = wait_for(lambda: (lambda r: r.json() if r.status_code == 409 else None)(
        devices[0].session.post(f"{api.url}/model-centric/secagg-round",
                                json={**devices[0].ids, "wait": 10}, timeout=60)),
                       "the rounds to abort")
    assert aborted["error"]["code"] == "secagg_aborted"
    cycle = cycles_of(api, name)[0]
    assert (cycle["status"], cycle["reported"]) == ("open", 0)


@pytest.mark.parametrize("backend", database_backends())
def test_a_node_restart_keeps_the_rounds_and_a_resent_message_gets_the_same_answer(
        node_factory, backend):
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name("secagg")
    host(api, name, max_diffs=4, max_workers=4, min_diffs=2, cycle_length=300,
         secure_aggregation={"round_timeout": 120, "num_shares": 2})
    devices = [Device(node.url, name, seed) for seed in range(1, 5)]
    for device in devices:
        device.round()
        device.advertise()
    views = {d.worker_id: d.round() for d in devices}
    assert {v["round"] for v in views.values()} == {"share-keys"}
    # k = 2 of 3 others: a device's roster holds its own keys and its two neighbours'.
    assert {(v["advertised"], len(v["roster"])) for v in views.values()} == {(4, 3)}
    node.kill()
    node = node.restart()
    # The same round, roster and neighbour graph (k = 2 of 3: drawn, from the stored seed).
    # Its close time is the stored one, not a fresh round_timeout from the restart.
    for device in devices:
        view = device.round()
        assert view == {**views[device.worker_id], "timeout": view["timeout"]}
        assert view["timeout"] < views[device.worker_id]["timeout"]
    first = devices[0]
    index = str(views[first.worker_id]["index"])
    shared = first.share(views[first.worker_id])
    # Its acknowledgement lost, a device sends the same message again: the same answer, before
    # and after a restart, even once the round closed; a different message is refused.
    assert first.send("secagg-share-keys", shared) == {"status": "success",
                                                       "round": "share-keys"}
    keys = [base64.b64decode(key) for key in views[first.worker_id]["roster"][index]]
    assert first.send("secagg-advertise-keys", wire.encode_keys(*keys)) == {
        "status": "success", "round": "advertise-keys"}
    # The same keys in an older SDK's form are the same message.
    assert first.send("secagg-advertise-keys", {"c_public": b64(keys[0]),
                                                "s_public": b64(keys[1])}) == {
        "status": "success", "round": "advertise-keys"}
    other = first.send("secagg-advertise-keys", bytes(64), expect=409)
    assert other["error"]["code"] == "secagg_not_in_round"
    for device in devices[1:]:
        device.share(device.round())
    node.kill()
    node = node.restart()
    assert first.send("secagg-share-keys", shared) == {"status": "success",
                                                       "round": "share-keys"}
    for device in devices:
        device.masked_input(device.round())
    for device in devices:
        device.unmask(device.round())
    cycle = wait_for(lambda: (lambda c: c if c["status"] == "completed" else None)(
        cycles_of(HttpApi(node.url, node.admin_token), name)[0]), "the secure cycle to complete")
    assert (cycle["reported"], cycle["new_checkpoint"]) == (4, 2)
    start = tensors.decode(logistic_regression()[1])
    after = tensors.decode(HttpApi(node.url, node.admin_token).call(
        "retrieve-model", {"name": name, "checkpoint": 2}, admin=True).content)
    tolerance = step(SecureAggregation().params()) + 1e-6
    for tensor in start:
        mean = np.mean([d.diff[tensor].astype(np.float64) for d in devices], axis=0)
        assert np.abs(after[tensor] - (start[tensor] - mean)).max() <= tolerance


def entry(index: int, value: bytes) -> bytes:
    return struct.pack(">qI", index, len(value)) + value


# Bodies no device should send: each is refused as the message it is, never a 500, and is not
# stored (the device's right message is taken afterwards).
MALFORMED_BOXES = {
    "empty": b"",
    "a header cut short": b"\x00" * 5,
    "a value cut short": entry(2, b"\x01" * 168)[:-1],
    "a length past the end": struct.pack(">qI", 2, 2**32 - 1) + b"\x01",
    "out of order": entry(3, b"\x01") + entry(2, b"\x01"),
    "an index twice": entry(2, b"\x01") + entry(2, b"\x01"),
    "index zero": entry(0, b"\x01"),
    "a negative index": struct.pack(">qI", -2, 1) + b"\x01",
    "a device that is no neighbour": entry(2, b"\x01") + entry(3, b"\x01") + entry(9, b"\x01"),
    "a byte left over": entry(2, b"\x01") + entry(3, b"\x01") + b"\x00",
}


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_malformed_binary_messages_are_refused_as_invalid_and_not_stored(shared_node, transport):
    api = (HttpApi(shared_node.url, shared_node.admin_token) if transport == "http"
           else WsApi(shared_node.ws_url, shared_node.admin_token))
    name = unique_name("secagg")
    host(api, name, max_diffs=3, max_workers=3, min_diffs=2, cycle_length=300,
         secure_aggregation={"round_timeout": 120})
    devices = [Device(shared_node.url, name, seed) for seed in range(1, 4)]
    first = devices[0]

    def refused(event: str, field: str, body: bytes, extra: dict | None = None,
                case: str = "") -> None:
        answer = api.call(event, {**first.ids, **(extra or {})}, blobs={field: body})
        assert (answer.status, answer.error_code) == (400, "secagg_message_invalid"), (
            case, answer.body)

    first.round()
    c_public, s_public = first.core.advertise_keys()
    keys = wire.encode_keys(c_public, s_public)
    for wrong in (b"", keys[:-1], keys + b"\x00"):
        refused("secagg-advertise-keys", "public_keys", wrong)
    refused("secagg-advertise-keys", "public_keys", keys, {"c_public": b64(c_public)})  # two forms
    assert api.call("secagg-advertise-keys", first.ids, blobs={"public_keys": keys}).body == {
        "status": "success", "round": "advertise-keys"}
    # An older SDK's form still counts: over the WebSocket a text frame, over HTTP a JSON body,
    # the keys in base64.
    second = devices[1]
    second.round()
    c_second, s_second = second.core.advertise_keys()
    legacy = {"c_public": b64(c_second), "s_public": b64(s_second)}
    if transport == "ws":
        assert api.call("secagg-advertise-keys", {**second.ids, **legacy}).body == {
            "status": "success", "round": "advertise-keys"}
    else:
        second.send("secagg-advertise-keys", legacy)
    devices[2].round()
    devices[2].advertise()

    view = first.round()
    assert view["round"] == "share-keys" and view["neighbours"] == [2, 3]
    assert view["roster"]["2"] == [b64(c_second), b64(s_second)]
    for case, body in MALFORMED_BOXES.items():
        refused("secagg-share-keys", "boxes", body, case=case)
    roster = {int(i): (base64.b64decode(c), base64.b64decode(s))
              for i, (c, s) in view["roster"].items()}
    boxes = first.core.share_keys(1, roster, view["neighbours"], view["advertised"])
    assert api.call("secagg-share-keys", first.ids,
                    blobs={"boxes": wire.encode_entries(boxes)}).body["status"] == "success"
    for device in devices[1:]:
        device.share(device.round())
    for device in devices:
        device.masked_input(device.round())

    view = first.round()
    assert view["round"] == "unmask"
    shares = first.core.unmask(view["survivors"], view["dropped"])
    for body in (b"", wire.encode_entries(shares)[:-1], wire.encode_entries({2: shares[2]})):
        refused("secagg-unmask", "shares", body)
    assert api.call("secagg-unmask", first.ids,
                    blobs={"shares": wire.encode_entries(shares)}).body["status"] == "success"
    for device in devices[1:]:
        device.unmask(device.round())
    cycle = wait_for(lambda: (lambda c: c if c["status"] == "completed" else None)(
        cycles_of(HttpApi(shared_node.url, shared_node.admin_token), name)[0]),
        "the secure cycle to complete")
    assert cycle["reported"] == 3
    api.close()
