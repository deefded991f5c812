"""The researcher side against a real Node: host, list, per-cycle metrics, retrieve."""

from __future__ import annotations

import numpy as np
import pytest

import fedgrid
from fedgrid import Admin, Client


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_host_list_and_retrieve(sdk_node, compiled_mlp, transport):
    url = sdk_node.url if transport == "http" else sdk_node.ws_url
    name = f"admin-host-{transport}"
    with Admin(url, sdk_node.admin_token) as admin:
        answer = admin.host_training(compiled_mlp, name, "2.0",
                                     client_config={"batch_size": 8},
                                     server_config={"max_diffs": 4, "num_cycles": 3})
        assert answer["status"] == "success" and answer["checkpoint"] == 1
        assert set(answer["plans"]) == {"training_plan"}
        process = next(p for p in admin.processes() if p["model"] == name)
        assert process["version"] == "2.0"
        assert process["server_config"]["max_diffs"] == 4
        assert process["cycle"]["sequence"] == 1
        assert admin.checkpoints(name, "2.0")["latest"] == 1
        weights = admin.retrieve_model(name, "2.0", checkpoint=1)
        for key, value in compiled_mlp.checkpoint().items():
            np.testing.assert_array_equal(weights[key], value)
        state_dict = admin.retrieve_state_dict(name)
        assert tuple(state_dict["layers.0.weight"].shape) == (32, 64)
        with pytest.raises(fedgrid.FedgridError) as caught:
            admin.host_training(compiled_mlp, name, "2.0")
        assert caught.value.code == "process_exists"


def test_host_a_plan_file_with_its_checkpoint_without_compiling(sdk_node, compiled_mlp, digits):
    # What a torch-free researcher machine does: plan bytes and a safetensors checkpoint.
    from fedgrid_plans import tensors

    plan_bytes = compiled_mlp.to_bytes()
    checkpoint = tensors.encode(compiled_mlp.checkpoint())
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        with pytest.raises(ValueError, match="checkpoint"):
            admin.host_training(plan_bytes, "admin-plan-file")
        admin.host_training(plan_bytes, "admin-plan-file", checkpoint=checkpoint,
                            server_config={"max_diffs": 1})
    features, labels = digits
    with Client(sdk_node.url) as client:
        assignment = client.new_job("admin-plan-file").request()
        assignment.report(assignment.train((features[:30], labels[:30])))


def test_per_cycle_metrics(sdk_node, host, digits):
    name = host(server_config={"max_diffs": 2})
    features, labels = digits
    with Client(sdk_node.url) as client:
        for shard in (slice(0, 40), slice(40, 60)):
            assignment = client.new_job(name).request()
            assignment.report(assignment.train((features[shard], labels[shard])))
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        cycles = admin.cycles(name)
    first = cycles[0]
    assert first["sequence"] == 1 and first["status"] == "completed"
    assert first["reported"] == 2 and first["num_samples"] == 60
    assert set(first["client_metrics"]) == {"loss", "accuracy"}
    assert cycles[1]["status"] == "open"


def test_wrong_admin_token_says_what_to_do(sdk_node):
    with Admin(sdk_node.url, "not-the-token") as admin, \
            pytest.raises(fedgrid.AdminAuthError) as caught:
        admin.processes()
    assert caught.value.code == "admin_token_invalid"
    with pytest.raises(ValueError, match="admin token"):
        Admin(sdk_node.url, "")


def test_unknown_model(sdk_node):
    with Admin(sdk_node.url, sdk_node.admin_token) as admin, \
            pytest.raises(fedgrid.ProcessUnknown):
        admin.checkpoints("no-such-model")


def test_host_a_torch_module_and_load_the_trained_state_dict_back(sdk_node, digits):
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 10))
    features, labels = digits
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        admin.host_training(module, "admin-torch-module",
                            example_batch=(features[:2], labels[:2]),
                            server_config={"max_diffs": 1})
        with Client(sdk_node.url) as client:
            assignment = client.new_job("admin-torch-module").request()
            assignment.report(assignment.train((features[:50], labels[:50])))
        module.load_state_dict(admin.retrieve_state_dict("admin-torch-module"))
        trained = admin.retrieve_model("admin-torch-module", checkpoint=2)
    np.testing.assert_array_equal(module[0].weight.detach().numpy(), trained["0.weight"])
