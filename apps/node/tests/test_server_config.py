"""server_config and client_config on the Node: refused at hosting with the field named, defaults
shown in the listing, stored configs that predate the rules still loaded, the string strategy.

The models' every bound is tested in protocol/tests/test_configs.py; here, what the Node adds.
"""

from __future__ import annotations

import json
import logging

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from fedgrid_node.cycles.server_config import (
    ServerConfigError,
    check_server_config,
    parse_server_config,
)
from fedgrid_node.db.models import Process
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, unique_name

# ----------------------------------------------------------------------------- unit


def test_defaults_over_select_thirty_percent_above_the_goal():
    config = check_server_config({"max_diffs": 10})
    assert config.max_workers == 13 and config.min_diffs == 1
    assert check_server_config({"max_diffs": 3}).max_workers == 4  # ceil(3.9)
    assert check_server_config({}).requires_speed_test is False
    assert check_server_config({"maximum_ping": 50}).requires_speed_test is True


def test_public_view_hides_authentication_secrets():
    config = check_server_config({"authentication": {"type": "jwt", "secret": "x" * 40}})
    assert config.public()["authentication"] == {"type": "jwt"}
    assert config.stored()["authentication"]["secret"] == "x" * 40  # the Node still needs it


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"max_diffs": 0}, "server_config.max_diffs"),
        ({"max_diffs": 2.5}, "server_config.max_diffs"),
        ({"max_diffs": True}, "server_config.max_diffs"),
        ({"max_diff": 3}, "server_config.max_diff"),
        ({"num_cycle": 3}, "server_config.num_cycle"),
        ({"max_diffs": 2, "min_diffs": 3}, "server_config.min_diffs"),
        ({"max_diffs": 5, "max_workers": 4}, "server_config.max_workers"),
        ({"pool_selection": "fastest"}, "server_config.pool_selection"),
        ({"quorum_policy": "pray"}, "server_config.quorum_policy"),
        ({"cycle_length": -1}, "server_config.cycle_length"),
        ({"minimum_download_speed": "fast"}, "server_config.minimum_download_speed"),
        # What only the Node knows: strategies and their options, authentication settings.
        ({"strategy": {"name": "fedmagic"}}, "server_config.strategy"),
        ({"strategy": "fedmagic"}, "server_config.strategy"),
        ({"strategy": {"name": "fedavg", "server_learning_rate": -1}}, "server_config.strategy"),
        ({"strategy": {"name": "fedavg", "unknown_option": 1}}, "server_config.strategy"),
        ({"authentication": {"type": "jwt", "algorithms": ["none"]}},
         "server_config.authentication"),
        ({"authentication": {"type": "endpoint", "url": "ftp://x"}}, "server_config.authentication"),
        ([], "server_config"),
    ],
)
def test_bad_settings_name_the_field(raw, field):
    with pytest.raises(ServerConfigError) as caught:
        check_server_config(raw)
    assert caught.value.field == field and caught.value.code == "server_config_invalid"
    assert caught.value.message.startswith(field)


def test_a_stored_config_is_read_leniently_with_one_warning(caplog):
    stored = {"max_diffs": 3, "max_diff": 5, "strategy": "fedadam"}  # accepted before the rules
    with caplog.at_level(logging.WARNING, logger="fedgrid_node.cycles.server_config"):
        config = parse_server_config(stored)
        again = parse_server_config(stored)
    assert config == again and config.max_diffs == 3 and config.strategy == {"name": "fedadam"}
    warnings = [r.getMessage() for r in caplog.records if "max_diff" in r.getMessage()]
    assert len(warnings) == 1 and "did you mean max_diffs?" in warnings[0]
    # Nothing a database may hold makes it raise.
    for odd in (None, [], "x", {"max_diffs": "ten"}, {"cycle_length": 1e30}):
        assert parse_server_config(odd).max_diffs >= 1


# ----------------------------------------------------------------------------- a real Node


def host(api, name=None, *, server_config=None, client_config=None):
    plan, checkpoint = logistic_regression()
    data = {"name": name or unique_name(), "version": "1.0"}
    if server_config is not None:
        data["server_config"] = server_config
    if client_config is not None:
        data["client_config"] = client_config
    return api.call("host-training", data,
                    blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)


def listed(api, name) -> dict:
    processes = api.call("processes", admin=True).body["processes"]
    return next(p for p in processes if p["model"] == name)


@pytest.mark.parametrize("server_config, field, words", [
    ({"max_diff": 3}, "server_config.max_diff", "did you mean max_diffs?"),
    ({"num_cycle": 3, "max_diffs": 1}, "server_config.num_cycle", "did you mean num_cycles?"),
    ({"max_diffs": "10"}, "server_config.max_diffs", "must be an integer"),
    ({"max_diffs": 0}, "server_config.max_diffs", "at least 1"),
    ({"cycle_length": 0.001}, "server_config.cycle_length", "at least 0.05"),
    ({"max_diffs": 4, "min_diffs": 5}, "server_config.min_diffs", "cannot exceed max_diffs"),
    ({"max_diffs": 4, "max_workers": 3}, "server_config.max_workers", "cannot be below"),
    ({"quorum_policy": "wait"}, "server_config.quorum_policy", "'extend' or 'abandon'"),
    ({"strategy": {"name": "fedadam", "beta_3": 1}}, "server_config.strategy", "beta_3"),
    ({"authentication": {"type": "jwt", "algorithms": ["none"]}},
     "server_config.authentication", "not allowed"),
    # A secure cycle's Node sees only the sum: no rule that needs each update can apply.
    ({"max_diffs": 4, "secure_aggregation": True, "aggregator": "median"},
     "server_config.aggregator", "only the sum"),
    ({"max_diffs": 4, "secure_aggregation": True, "norm_bound": 1.0},
     "server_config.norm_bound", "only the sum"),
])
def test_host_training_refuses_a_bad_server_config_naming_the_field(api, server_config, field,
                                                                    words):
    name = unique_name()
    answer = host(api, name, server_config=server_config)
    assert (answer.status, answer.error_code) == (400, "server_config_invalid"), answer.body
    error = answer.body["error"]
    assert error["details"]["field"] == field and words in error["message"], error
    assert field in error["message"]
    if "did you mean" in words:
        assert error["details"]["suggestion"] == words.split()[-1].rstrip("?")
    # Nothing was hosted; the name is still free.
    assert name not in [p["model"] for p in api.call("processes", admin=True).body["processes"]]


@pytest.mark.parametrize("client_config, field, words", [
    ({"epochs": 0}, "client_config.epochs", "at least 1"),
    ({"lr": -5, "batch_size": 0}, "client_config.batch_size", "at least 1"),
    ({"lr": -5}, "client_config.lr", "greater than 0"),
    ({"learning_rate": 0}, "client_config.learning_rate", "greater than 0"),
    ({"max_updates": 0}, "client_config.max_updates", "at least 1"),
    ({"batch_size": 8.5}, "client_config.batch_size", "must be an integer"),
    ({"shuffle": "no"}, "client_config.shuffle", "true or false"),
    ({"epoch": 1}, "client_config.epoch", "did you mean epochs?"),
    ({"max_diffs": 1}, "client_config.max_diffs", "belongs in server_config"),
])
def test_host_training_refuses_a_bad_client_config_naming_the_field(api, client_config, field,
                                                                    words):
    answer = host(api, client_config=client_config, server_config={"max_diffs": 1})
    assert (answer.status, answer.error_code) == (400, "client_config_invalid"), answer.body
    error = answer.body["error"]
    assert error["details"]["field"] == field and words in error["message"], error


def test_the_listing_shows_every_default_and_the_configs_as_normalised(api):
    name = unique_name()
    answer = host(api, name, server_config={"max_diffs": 3.0, "strategy": "FedAvgM"},
                  client_config={"batch_size": 8, "lr": 0.1})
    assert answer.status == 200, answer.body
    process = listed(api, name)
    assert process["server_config"] == {
        "max_diffs": 3, "min_diffs": 1, "max_workers": 4, "cycle_length": 3600.0,
        "num_cycles": None, "quorum_policy": "extend", "extend_seconds": None,
        "pool_selection": "iterate", "do_not_reuse_workers_until_cycle": 0,
        "assignment_lease": None, "minimum_download_speed": None, "minimum_upload_speed": None,
        "maximum_ping": None, "strategy": {"name": "fedavgm"}, "evaluation_every": None,
        "evaluation_devices": 1, "aggregator": "mean", "trim_fraction": 0.1, "norm_bound": None,
        "differential_privacy": None, "authentication": None, "secure_aggregation": None,
    }
    assert process["client_config"] == {"batch_size": 8, "lr": 0.1, "name": name,
                                         "version": "1.0"}
    # No config at all: every default.
    bare = unique_name()
    assert host(api, bare).status == 200
    assert listed(api, bare)["server_config"]["max_workers"] == 13
    assert listed(api, bare)["client_config"] == {"name": bare, "version": "1.0"}


def test_a_string_strategy_runs_and_the_dashboard_shows_it(shared_node):
    """Regression: a model hosted with "strategy": "fedadam" made the dashboard answer 500."""
    api = HttpApi(shared_node.url, shared_node.admin_token)
    name = unique_name("fedadam")
    answer = host(api, name, server_config={"max_diffs": 1, "strategy": "fedadam"})
    assert answer.status == 200, answer.body
    assert listed(api, name)["server_config"]["strategy"] == {"name": "fedadam"}
    browser = requests.Session()
    page = browser.post(shared_node.url + "/dashboard/login",
                        data={"token": shared_node.admin_token}, timeout=10)
    assert page.status_code == 200 and name in page.text
    assert "strategy fedadam" in page.text


@pytest.mark.parametrize("backend", database_backends())
def test_a_config_stored_before_the_rules_still_loads(node_factory, backend):
    """A database written by an older Node: a string strategy and a misspelt key, both accepted
    then. The Node starts, warns, lists it, shows its dashboard and runs its cycles."""
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name()
    assert host(api, name, server_config={"max_diffs": 1, "cycle_length": 600}).status == 200
    node.stop()
    engine = create_engine((node.env.get("DATABASE_URL") or f"sqlite:///{node.data_dir / 'node.db'}")
                           .replace("postgresql://", "postgresql+pg8000://"))
    with Session(engine) as session:
        process = session.scalar(select(Process).where(Process.name == name))
        process.server_config = {"max_diffs": 1, "cycle_length": 600, "num_cycle": 5,
                                 "strategy": "fedadam"}
        session.commit()
    engine.dispose()
    node = node.restart()
    api = HttpApi(node.url, node.admin_token)
    try:
        process = listed(api, name)
        assert process["server_config"]["strategy"] == {"name": "fedadam"}
        assert process["server_config"]["num_cycles"] is None
        worker = api.call("authenticate", {"model_name": name, "model_version": "1.0"})
        assert worker.status == 200, worker.body
        place = api.call("cycle-request", {"worker_id": worker.body["worker_id"], "model": name,
                                           "version": "1.0"})
        assert place.body["status"] == "accepted", place.body
        browser = requests.Session()
        page = browser.post(node.url + "/dashboard/login", data={"token": node.admin_token},
                            timeout=10)
        assert page.status_code == 200 and "strategy fedadam" in page.text
        log = node.log()
        assert "num_cycle" in log and "did you mean num_cycles?" in log
        assert "Traceback" not in log
    finally:
        node.stop()


def test_host_training_answers_the_json_config_form_fields(shared_node):
    """Over HTTP multipart the configs are JSON text; a non-object is refused by its code."""
    plan, checkpoint = logistic_regression()
    answer = requests.post(
        f"{shared_node.url}/model-centric/host-training",
        data={"name": unique_name(), "version": "1", "server_config": json.dumps([1, 2])},
        files={"model": ("m", checkpoint), "plans[training_plan]": ("p", plan)},
        headers={"Authorization": f"Bearer {shared_node.admin_token}"}, timeout=60)
    error = answer.json()["error"]
    assert (answer.status_code, error["code"]) == (400, "server_config_invalid")
    assert error["details"]["field"] == "server_config"
