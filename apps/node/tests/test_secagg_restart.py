"""kill -9 during a secure cycle's rounds, then a restart on the same database (SQLite and
PostgreSQL): the rounds go on from the stored messages, devices driven by the Python SDK (over
HTTP, and over WebSocket for the first scenario) carry on where they were, and the checkpoint is
the survivors' mean within one quantisation step.

Devices are held at chosen points by a gate on their transport (a device slow to send); the
tests wait on the Node's stored state (its `secure_messages` and `secure_rounds` rows), never on
time. A sparse neighbour graph (k = 4 of 5) makes the graph's seed matter: a graph drawn again
differently would not fit the stored share boxes.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from fedgrid import Client
from fedgrid_node.db.models import ReportDiff, SecureMessage, SecureRound
from fedgrid_plans import tensors
from fedgrid_protocol.configs import SecureAggregation
from fedgrid_protocol.secagg import SecAggAggregator
from fedgrid_protocol.secagg.quantize import step
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, random_diff, unique_name

from .test_cycle_engine import WAIT_SECONDS, cycles_of, host, wait_for
from .test_secagg_cycle import database_url

COHORT = 6


class Dropped(Exception):
    """A gated device told to vanish instead of going on."""


class Device:
    """One device on its own SDK client (its own transport, so that it can be held alone),
    reporting a known update through `Assignment.report` in a thread."""

    def __init__(self, url: str, name: str, seed: int, checkpoint: bytes) -> None:
        self.client = Client(url)
        self.job = self.client.new_job(name, "1")
        self.diff = random_diff(checkpoint, seed)
        self.error: BaseException | None = None
        self.answer: dict | None = None
        self._gates: dict[str, threading.Event] = {}
        self._dropped = False
        original = self.job.transport.call

        def call(event, *args, **kwargs):
            gate = self._gates.get(event)
            if gate is not None:
                gate.wait()
                if self._dropped:
                    raise Dropped(event)
            return original(event, *args, **kwargs)

        self.job.transport.call = call
        self.thread = threading.Thread(target=self._run, daemon=True)

    def hold_before(self, event: str) -> None:
        self._gates[event] = threading.Event()

    def release(self, event: str) -> None:
        self._gates[event].set()

    def drop(self) -> None:
        self._dropped = True
        for gate in self._gates.values():
            gate.set()

    def _run(self) -> None:
        try:
            assignment = self.job.request(wait=10)
            self.answer = assignment.report(diff=self.diff, num_samples=1)
        except BaseException as exc:  # asserted in the test's thread
            self.error = exc

    def join(self) -> None:
        self.thread.join(timeout=240)
        assert not self.thread.is_alive()
        self.client.close()


class StoredRounds:
    """The Node's secure rounds as its database holds them, read from outside."""

    def __init__(self, node) -> None:
        self.engine = create_engine(database_url(node).replace("postgresql://",
                                                               "postgresql+pg8000://"))

    def messages(self, round_number: int) -> dict[int, bytes]:
        with Session(self.engine) as session:
            rows = session.execute(select(SecureMessage.device, SecureMessage.data)
                                   .where(SecureMessage.round == round_number)).all()
        return {device: bytes(data) for device, data in rows}

    def round(self) -> SecureRound | None:
        with Session(self.engine) as session:
            row = session.scalars(select(SecureRound)).first()
            if row is not None:
                session.expunge(row)
            return row

    def count(self, model) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(model))

    def close(self) -> None:
        self.engine.dispose()


def wait_for_devices(condition, what: str, devices: list[Device], node):
    """wait_for, failing at once when a device gave up, and with the Node's log."""
    give_up = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < give_up:
        failed = [d.error for d in devices
                  if d.error is not None and not isinstance(d.error, Dropped)]
        assert not failed, f"{failed}\n{node.log()}"
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}\n{node.log()}")


def start_devices(node, name: str, transport: str = "http") -> tuple[list[Device], bytes]:
    checkpoint = logistic_regression()[1]
    url = node.url if transport == "http" else node.ws_url
    devices = [Device(url, name, seed, checkpoint) for seed in range(1, COHORT + 1)]
    return devices, checkpoint


def assert_checkpoint_is_the_mean(node, name: str, checkpoint: bytes, survivors: list[Device],
                                  settings: dict) -> None:
    api = HttpApi(node.url, node.admin_token)
    try:
        cycle = wait_for(lambda: (lambda c: c if c["status"] != "open" else None)(
            cycles_of(api, name)[0]), "the secure cycle to close")
        assert (cycle["status"], cycle["reported"], cycle["new_checkpoint"]) == (
            "completed", len(survivors), 2), cycle
        after = tensors.decode(api.call("retrieve-model", {"name": name, "checkpoint": 2},
                                        admin=True).content)
    finally:
        api.close()
    start = tensors.decode(checkpoint)
    tolerance = step(SecureAggregation(**settings).params()) + 1e-6  # float32 storage
    for tensor in start:
        mean = np.mean([d.diff[tensor].astype(np.float64) for d in survivors], axis=0)
        assert np.abs(after[tensor] - (start[tensor] - mean)).max() <= tolerance


def quantised(diff: dict[str, np.ndarray], settings: dict) -> np.ndarray:
    """A device's update as the integers it masks (before stochastic rounding: within 1)."""
    params = SecureAggregation(**settings).params()
    c, q = params.clipping_range, params.quantization_range
    flat = np.concatenate([diff[n].astype(np.float64).reshape(-1) for n in sorted(diff)])
    return (np.clip(flat, -c, c) + c) * (q - 1) / (2 * c)


@pytest.mark.parametrize("transport", ["http", "ws"])
@pytest.mark.parametrize("backend", database_backends())
def test_kill_9_with_some_masked_inputs_in_and_the_cycle_completes(node_factory, backend,
                                                                   transport):
    """Killed in the masked-input round with half the masked inputs acknowledged; restarted,
    the other half arrive and the unmask round completes the sum of all six."""
    settings = {"round_timeout": 120, "num_shares": 4}
    node = node_factory(backend)
    name = unique_name("secagg-restart")
    api = HttpApi(node.url, node.admin_token)
    host(api, name, max_diffs=COHORT, max_workers=COHORT, min_diffs=2, cycle_length=600,
         secure_aggregation=settings)
    api.close()
    devices, checkpoint = start_devices(node, name, transport)
    late = devices[3:]
    for device in late:
        device.hold_before("secagg-masked-input")
    stored = StoredRounds(node)
    try:
        for device in devices:
            device.thread.start()
        wait_for_devices(lambda: len(stored.messages(SecAggAggregator.MASKED_INPUT)) == 3,
                         "three masked inputs to be stored", devices, node)
        node.kill()
        # What the dead Node left: the rounds' state and the acknowledged messages, none of
        # them an update in the clear.
        row = stored.round()
        assert (row.round, row.failure, len(row.cohort)) == (SecAggAggregator.MASKED_INPUT,
                                                             None, COHORT)
        assert len(stored.messages(SecAggAggregator.ADVERTISE)) == COHORT
        assert len(stored.messages(SecAggAggregator.SHARE)) == COHORT
        masked = stored.messages(SecAggAggregator.MASKED_INPUT)
        assert_no_update_in_the_clear(masked, devices, settings)
        assert stored.count(ReportDiff) == 0

        node = node.restart()
        for device in late:
            device.release("secagg-masked-input")
        for device in devices:
            device.join()
        assert [d.error for d in devices] == [None] * COHORT
        assert all(d.answer["secure"] for d in devices)
        assert_checkpoint_is_the_mean(node, name, checkpoint, devices, settings)
        # The close took the rounds' rows with it, as it takes report diffs.
        assert (stored.count(SecureMessage), stored.count(SecureRound)) == (0, 0)
    finally:
        stored.close()


@pytest.mark.parametrize("backend", database_backends())
def test_kill_9_twice_with_a_dropout_and_a_round_that_timed_out_while_down(node_factory,
                                                                            backend):
    """Killed in the masked-input round with one device gone, and kept down past that round's
    close: at the restart it closes at once, without the dropout. Killed again in the unmask
    round with three of five answers in: the rest arrive and the sum is the five survivors'."""
    settings = {"round_timeout": 30, "num_shares": 4}
    node = node_factory(backend)
    name = unique_name("secagg-restart")
    api = HttpApi(node.url, node.admin_token)
    host(api, name, max_diffs=COHORT - 1, max_workers=COHORT, min_diffs=2, cycle_length=600,
         secure_aggregation=settings)
    api.close()
    devices, checkpoint = start_devices(node, name)
    gone, survivors = devices[0], devices[1:]
    gone.hold_before("secagg-masked-input")
    late = survivors[3:]
    for device in late:
        device.hold_before("secagg-unmask")
    stored = StoredRounds(node)
    try:
        for device in devices:
            device.thread.start()
        wait_for_devices(
            lambda: len(stored.messages(SecAggAggregator.MASKED_INPUT)) == COHORT - 1,
            "the survivors' masked inputs to be stored", devices, node)
        node.kill()
        gone.drop()
        closes = stored.round().round_closes
        wait_for(lambda: datetime.now(UTC).replace(tzinfo=None) > closes,
                 "the masked-input round's close time to pass while the Node is down")
        node = node.restart()
        wait_for_devices(lambda: len(stored.messages(SecAggAggregator.UNMASK)) == 3,
                         "three unmask answers to be stored", devices, node)
        node.kill()
        assert stored.round().round == SecAggAggregator.UNMASK
        node = node.restart()
        for device in late:
            device.release("secagg-unmask")
        for device in devices:
            device.join()
        assert isinstance(gone.error, Dropped)
        assert [d.error for d in survivors] == [None] * (COHORT - 1)
        assert_checkpoint_is_the_mean(node, name, checkpoint, survivors, settings)
    finally:
        stored.close()


def assert_no_update_in_the_clear(masked: dict[int, bytes], devices: list[Device],
                                  settings: dict) -> None:
    """Every stored masked input is as far from every device's quantised update as uniform
    noise: a coordinate within 16 levels of the update happens with probability 2^-27."""
    assert masked
    for data in masked.values():
        words = np.frombuffer(data, dtype="<u4").astype(np.int64)
        for device in devices:
            distance = np.abs(words - quantised(device.diff, settings))
            distance = np.minimum(distance, 2**32 - distance)
            assert int((distance <= 16).sum()) == 0
