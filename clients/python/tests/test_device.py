"""The device side against a real Node: call style and event style, over HTTP and WebSocket."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fedgrid
from fedgrid import Admin, Client

TRANSPORTS = ["http", "ws"]


def node_url(node, transport: str) -> str:
    return node.url if transport == "http" else node.ws_url


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_style_trains_reports_and_moves_the_checkpoint(shared_node, host, digits, transport):
    name = host(node=shared_node, server_config={"max_diffs": 1})
    features, labels = digits
    with Client(node_url(shared_node, transport)) as client:
        job = client.new_job(name)
        assignment = job.request()
        assert (assignment.cycle, assignment.checkpoint) == (1, 1)
        assert assignment.client_config["batch_size"] == 16
        start = assignment.parameters()
        result = assignment.train((features[:64], labels[:64]))
        # The client_config's batch size (16) and one epoch over 64 examples: 4 updates.
        assert result.updates == 4 and result.num_samples == 64
        assert set(result.metrics) == {"loss", "accuracy"}
        assert set(result.diff) == set(start)
        assert assignment.report(result)["status"] == "success"
    with Admin(shared_node.url, shared_node.admin_token) as admin:
        assert admin.checkpoints(name)["latest"] == 2
        new = admin.retrieve_model(name)
    # FedAvg of one report: the new checkpoint is start - diff.
    for key in start:
        np.testing.assert_allclose(new[key], start[key] - result.diff[key], atol=1e-6)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_event_style_accepted_then_rejected_with_a_numeric_timeout(sdk_node, host, digits,
                                                                   transport):
    name = host(server_config={"max_diffs": 2, "max_workers": 2, "cycle_length": 60})
    features, labels = digits
    seen: dict[str, object] = {}

    def accepted(assignment):
        seen["accepted"] = assignment
        assignment.report(assignment.train((features[:32], labels[:32])))

    with Client(node_url(sdk_node, transport)) as client:
        job = client.new_job(name).on("accepted", accepted).on(
            "rejected", lambda rejection: seen.setdefault("rejected", rejection))
        assert job.start() is seen["accepted"]
        assert seen["accepted"].reported
        # The same worker asks again in the same cycle: it already reported, so it is told when
        # the next cycle is expected (a number of seconds, never a text duration): the Node's
        # estimate from the report rate, at least 1 s and never past the 60 s deadline (+ jitter).
        assert job.start() is None
    rejection = seen["rejected"]
    assert isinstance(rejection, fedgrid.Rejected)
    assert rejection.reason == "already_reported"
    assert isinstance(rejection.timeout, float) and 1 <= rejection.timeout <= 66


def test_call_style_rejection_raises_with_timeout(sdk_node, host):
    name = host(server_config={"max_diffs": 1, "max_workers": 1, "cycle_length": 30})
    with Client(sdk_node.url) as client:
        client.new_job(name).request()
        with pytest.raises(fedgrid.Rejected) as caught:
            client.new_job(name).request()
    assert caught.value.reason == "cycle_full"
    # Nothing observed yet: the Node's estimate is a probe interval, never past the deadline.
    assert isinstance(caught.value.timeout, float) and 1 <= caught.value.timeout <= 33


def test_error_handler_gets_refusals_instead_of_a_raise(sdk_node, host):
    name = host()
    errors = []
    with Client(sdk_node.url) as client:
        job = client.new_job(name + "-missing").on("error", errors.append)
        assert job.start() is None
    assert isinstance(errors[0], fedgrid.ProcessUnknown)
    assert errors[0].code == "process_unknown"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_duplicate_report_is_refused_with_the_nodes_code(sdk_node, host, digits, transport):
    name = host(server_config={"max_diffs": 3})
    features, labels = digits
    with Client(node_url(sdk_node, transport)) as client:
        assignment = client.new_job(name).request()
        result = assignment.train((features[:20], labels[:20]))
        assignment.report(result)
        with pytest.raises(fedgrid.ReportRefused) as caught:
            assignment.report(result)
    assert caught.value.code == "report_duplicate"
    assert caught.value.status == 409


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_assignment_expires_when_its_cycle_closes(sdk_node, host, digits, transport):
    name = host(server_config={"max_diffs": 1, "max_workers": 2})
    features, labels = digits
    with Client(node_url(sdk_node, transport)) as client:
        slow = client.new_job(name).request()
        fast = client.new_job(name).request()
        fast.report(fast.train((features[:20], labels[:20])))  # the goal: cycle 1 closes
        with pytest.raises(fedgrid.AssignmentExpired) as caught:
            slow.report(slow.train((features[:20], labels[:20])))
    assert caught.value.code == "cycle_closed"


def test_training_finished_after_the_last_cycle(sdk_node, host, digits):
    name = host(server_config={"max_diffs": 1, "num_cycles": 1})
    features, labels = digits
    with Client(sdk_node.url) as client:
        job = client.new_job(name)
        assignment = job.request()
        assignment.report(assignment.train((features[:20], labels[:20])))
        with pytest.raises(fedgrid.TrainingFinished):
            job.request()


def test_participate_honours_timeouts_until_training_finishes(sdk_node, host, digits):
    # One place per cycle and two devices: each cycle one of them is turned away and must sleep
    # the Node's timeout (about a cycle length) rather than ask again at once.
    name = host(server_config={"max_diffs": 1, "max_workers": 1, "num_cycles": 3,
                               "cycle_length": 1.0})
    features, labels = digits
    shards = [(features[:40], labels[:40]), (features[40:80], labels[40:80])]
    reports: list[list] = [[], []]
    with Client(sdk_node.url) as client:
        jobs = [client.new_job(name) for _ in shards]

        def device(index: int) -> None:
            reports[index] = jobs[index].participate(shards[index])

        threads = [threading.Thread(target=device, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
    assert len(reports[0]) + len(reports[1]) == 3
    assert sorted(r["cycle"] for r in reports[0] + reports[1]) == [1, 2, 3]
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        cycles = admin.cycles(name)
    rejected = sum(sum(c["rejected"].values()) for c in cycles)
    assert rejected <= 6  # a polling device would have been turned away many times a second


def test_data_in_other_shapes_trains_the_same(sdk_node, host, digits):
    name = host(server_config={"max_diffs": 5})
    features, labels = digits
    x, y = features[:48], labels[:48]
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)]

    import torch
    from torch.utils.data import TensorDataset

    dataset = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    with Client(sdk_node.url) as client:
        assignment = client.new_job(name).request()
        results = [assignment.train(data, seed=7, shuffle=False)
                   for data in ((x, y), {"features": x, "labels": y}, batches, dataset)]
    for other in results[1:]:
        for key in results[0].diff:
            np.testing.assert_array_equal(other.diff[key], results[0].diff[key])


def test_speed_gates_are_met_with_an_automatic_speed_test(sdk_node, host):
    name = host(server_config={"minimum_download_speed": 0.01, "maximum_ping": 10_000})
    with Client(sdk_node.url) as client:
        speeds = client.speed_test(size=256 * 1024)
        assert speeds["download"] > 0 and speeds["upload"] > 0 and speeds["ping"] > 0
        job = client.new_job(name)
        assignment = job.request()
    assert job.requires_speed_test and job.speeds is not None
    assert assignment.cycle == 1


def test_device_authentication_with_a_jwt(sdk_node, host):
    import jwt

    secret = "device-secret-for-tests-0123456789"
    name = host(server_config={"authentication": {"type": "jwt", "secret": secret,
                                                  "algorithms": ["HS256"]}})
    with Client(sdk_node.url) as client, pytest.raises(fedgrid.AuthenticationError) as caught:
        client.new_job(name).request()
    assert caught.value.code == "auth_token_required"
    token = jwt.encode({"sub": "device-1", "exp": 4102444800}, secret, algorithm="HS256")
    with Client(sdk_node.url, auth_token=token) as client:
        assert client.new_job(name).request().cycle == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unreachable_node_raises_after_retries(transport):
    from tests.support.node_process import free_port

    url = f"http://127.0.0.1:{free_port()}" if transport == "http" else f"ws://127.0.0.1:{free_port()}/ws"
    with Client(url, retries=1, backoff=0.01) as client, \
            pytest.raises(fedgrid.NetworkUnreachable) as caught:
        client.new_job("anything").request()
    assert caught.value.code == "network_unreachable"


def test_participate_gives_up_when_the_node_stays_unreachable(digits):
    from tests.support.node_process import free_port

    features, labels = digits
    with Client(f"http://127.0.0.1:{free_port()}", retries=0) as client, \
            pytest.raises(fedgrid.NetworkUnreachable):
        client.new_job("anything").participate((features[:10], labels[:10]),
                                               max_network_failures=1)
