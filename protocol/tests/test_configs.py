"""server_config and client_config: every key's type, bounds and default, defined once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fedgrid_protocol.configs import (
    MAX_SECONDS,
    ClientConfig,
    ConfigInvalid,
    DifferentialPrivacyConfig,
    ServerConfig,
    markdown_table,
    read_leniently,
    validate_client_config,
    validate_server_config,
)
from fedgrid_protocol.errors import ERROR_CODES

ROOT = Path(__file__).resolve().parents[2]


def refusal(validate, raw) -> ConfigInvalid:
    with pytest.raises(ConfigInvalid) as caught:
        validate(raw)
    return caught.value


# ----------------------------------------------------------------------------- server_config


def test_server_defaults_are_defined_once_and_derive_max_workers():
    config = validate_server_config(None)
    assert config.public() == {
        "max_diffs": 10, "min_diffs": 1, "max_workers": 13, "cycle_length": 3600.0,
        "num_cycles": None, "quorum_policy": "extend", "extend_seconds": None,
        "pool_selection": "iterate", "do_not_reuse_workers_until_cycle": 0,
        "assignment_lease": None, "minimum_download_speed": None, "minimum_upload_speed": None,
        "maximum_ping": None, "strategy": {"name": "fedavg"}, "evaluation_every": None,
        "evaluation_devices": 1, "aggregator": "mean", "trim_fraction": 0.1, "norm_bound": None,
        "differential_privacy": None, "authentication": None, "secure_aggregation": None,
    }
    assert validate_server_config({"max_diffs": 3}).max_workers == 4  # ceil(1.3 × 3)
    assert validate_server_config({"max_diffs": 10}).max_workers == 13
    # The derived value is not the researcher's: it is not stored.
    assert validate_server_config({"max_diffs": 3}).stored() == {"max_diffs": 3}
    assert config.requires_speed_test is False
    assert validate_server_config({"maximum_ping": 50}).requires_speed_test is True


def test_a_strategy_name_is_normalised_to_an_object():
    config = validate_server_config({"strategy": "FedAdam"})
    assert config.strategy == {"name": "fedadam"}
    assert config.stored() == {"strategy": {"name": "fedadam"}}
    options = validate_server_config({"strategy": {"name": "fedavgm", "server_momentum": 0.5}})
    assert options.strategy == {"name": "fedavgm", "server_momentum": 0.5}


def test_integers_may_be_written_as_whole_floats():
    config = validate_server_config({"max_diffs": 4.0, "num_cycles": 2.0})
    assert (config.max_diffs, config.num_cycles) == (4, 2)
    assert isinstance(config.max_diffs, int) and config.stored() == {"max_diffs": 4, "num_cycles": 2}


@pytest.mark.parametrize("key, suggestion", [
    ("num_cycle", "num_cycles"), ("max_diff", "max_diffs"), ("min_diff", "min_diffs"),
    ("cycle_lenght", "cycle_length"), ("maxworkers", "max_workers"),
    ("assignment_leases", "assignment_lease"), ("strategie", "strategy"),
])
def test_a_misspelt_key_is_refused_with_the_closest_valid_one(key, suggestion):
    error = refusal(validate_server_config, {key: 3})
    assert error.code == "server_config_invalid" and error.field == f"server_config.{key}"
    assert error.suggestion == suggestion and f"did you mean {suggestion}?" in error.message
    assert error.api_error().to_json()["error"]["details"] == {
        "field": f"server_config.{key}", "suggestion": suggestion}


def test_an_unknown_key_without_a_close_one_lists_the_settings():
    error = refusal(validate_server_config, {"colour": "blue"})
    assert error.suggestion is None and "max_diffs" in error.message and "colour" in error.message


def test_a_client_key_in_server_config_says_where_it_belongs():
    error = refusal(validate_server_config, {"batch_size": 8})
    assert error.field == "server_config.batch_size" and "belongs in client_config" in error.message
    error = refusal(validate_client_config, {"max_diffs": 2})
    assert error.field == "client_config.max_diffs" and "belongs in server_config" in error.message


@pytest.mark.parametrize("raw, field, why", [
    # integers: ≥ 1 (≥ 0 for the reuse cool-down), whole, and numbers, not strings or booleans
    ({"max_diffs": 0}, "max_diffs", "at least 1"),
    ({"max_diffs": -3}, "max_diffs", "at least 1"),
    ({"max_diffs": 2.5}, "max_diffs", "must be an integer"),
    ({"max_diffs": True}, "max_diffs", "must be an integer"),
    ({"max_diffs": "10"}, "max_diffs", "must be an integer"),
    ({"min_diffs": 0}, "min_diffs", "at least 1"),
    ({"max_workers": 0}, "max_workers", "at least 1"),
    ({"num_cycles": 0}, "num_cycles", "at least 1"),
    ({"num_cycles": "forever"}, "num_cycles", "must be an integer"),
    ({"do_not_reuse_workers_until_cycle": -1}, "do_not_reuse_workers_until_cycle", "at least 0"),
    # durations: 0.05 s to ten years, finite numbers
    ({"cycle_length": -1}, "cycle_length", "at least 0.05"),
    ({"cycle_length": 0}, "cycle_length", "at least 0.05"),
    ({"cycle_length": MAX_SECONDS * 2}, "cycle_length", "at most 315360000"),
    ({"cycle_length": float("inf")}, "cycle_length", "finite"),
    ({"cycle_length": "1h"}, "cycle_length", "must be a number"),
    ({"extend_seconds": 0.01}, "extend_seconds", "at least 0.05"),
    ({"extend_seconds": 1e300}, "extend_seconds", "at most"),
    ({"assignment_lease": 0}, "assignment_lease", "at least 0.05"),
    ({"assignment_lease": float("nan")}, "assignment_lease", "finite"),
    # speed gates: non-negative numbers
    ({"minimum_download_speed": "fast"}, "minimum_download_speed", "must be a number"),
    ({"minimum_download_speed": -1}, "minimum_download_speed", "at least 0"),
    ({"minimum_upload_speed": -0.5}, "minimum_upload_speed", "at least 0"),
    ({"maximum_ping": -1}, "maximum_ping", "at least 0"),
    ({"maximum_ping": False}, "maximum_ping", "must be a number"),
    # choices
    ({"pool_selection": "fastest"}, "pool_selection", "'iterate' or 'random'"),
    ({"quorum_policy": "pray"}, "quorum_policy", "'extend' or 'abandon'"),
    ({"quorum_policy": 1}, "quorum_policy", "'extend' or 'abandon'"),
    # objects
    ({"strategy": 3}, "strategy", "strategy name or an object"),
    ({"strategy": {"server_learning_rate": 1}}, "strategy", "needs a \"name\""),
    ({"strategy": {"name": ""}}, "strategy", "needs a \"name\""),
    ({"authentication": "jwt"}, "authentication", "must be a JSON object"),
    # cross-field rules
    ({"max_diffs": 2, "min_diffs": 3}, "min_diffs", "cannot exceed max_diffs (2)"),
    ({"max_diffs": 5, "max_workers": 4}, "max_workers", "cannot be below max_diffs (5)"),
])
def test_a_bad_server_setting_is_refused_naming_the_field_and_why(raw, field, why):
    error = refusal(validate_server_config, raw)
    assert error.code == "server_config_invalid"
    assert error.field == f"server_config.{field}"
    assert error.message.startswith(f"server_config.{field} ") and why in error.message


@pytest.mark.parametrize("raw", [[], "max_diffs=3", 5, True])
def test_server_config_must_be_an_object(raw):
    error = refusal(validate_server_config, raw)
    assert error.field == "server_config" and "JSON object" in error.message


def test_every_problem_is_listed_the_first_one_named():
    error = refusal(validate_server_config, {"max_diffs": 0, "pool_selection": "x", "nope": 1})
    assert error.field == "server_config.max_diffs"
    details = error.api_error().to_json()["error"]["details"]
    assert [e["field"] for e in details["errors"]] == [
        "server_config.max_diffs", "server_config.pool_selection", "server_config.nope"]


def test_both_codes_are_in_the_error_table():
    for code in ("server_config_invalid", "client_config_invalid"):
        assert ERROR_CODES[code].status == 400 and ERROR_CODES[code].sdk_exception == "RequestInvalid"
    assert refusal(validate_client_config, {"epochs": 0}).api_error().status == 400


# ----------------------------------------------------------------------------- client_config


def test_client_config_keys_are_what_the_sdks_read():
    from fedgrid.jobs import CLIENT_CONFIG_KEYS

    assert set(CLIENT_CONFIG_KEYS) <= set(ClientConfig.model_fields)
    js = (ROOT / "clients/js/src/job.js").read_text()
    options = re.search(r"CLIENT_CONFIG_OPTIONS = \{([^}]*)\}", js).group(1)
    assert set(re.findall(r"(\w+):", options)) <= set(ClientConfig.model_fields)


def test_a_valid_client_config_is_kept_as_written():
    raw = {"batch_size": 16, "epochs": 2, "max_updates": 100, "lr": 0.05, "shuffle": False,
           "name": "digits", "version": "1.0"}
    assert validate_client_config(raw).stored() == raw
    assert validate_client_config(None).stored() == {}
    assert validate_client_config({"learning_rate": 1e-3, "epochs": 3.0}).stored() == {
        "learning_rate": 1e-3, "epochs": 3}
    # null means "the plan's default", as both SDKs read it
    assert validate_client_config({"batch_size": None}).batch_size is None


@pytest.mark.parametrize("raw, field, why", [
    ({"epochs": 0}, "epochs", "at least 1"),
    ({"epochs": 1.5}, "epochs", "must be an integer"),
    ({"batch_size": 0}, "batch_size", "at least 1"),
    ({"lr": -5, "batch_size": 0}, "batch_size", "at least 1"),
    ({"batch_size": "32"}, "batch_size", "must be an integer"),
    ({"batch_size": True}, "batch_size", "must be an integer"),
    ({"max_updates": 0}, "max_updates", "at least 1"),
    ({"lr": -5}, "lr", "greater than 0"),
    ({"lr": 0}, "lr", "greater than 0"),
    ({"lr": "0.1"}, "lr", "must be a number"),
    ({"lr": float("inf")}, "lr", "finite"),
    ({"learning_rate": 0}, "learning_rate", "greater than 0"),
    ({"lr": 0.1, "learning_rate": 0.1}, "learning_rate", "same setting"),
    ({"shuffle": 1}, "shuffle", "true or false"),
    ({"shuffle": "yes"}, "shuffle", "true or false"),
    ({"name": 5}, "name", "must be a string"),
    ({"version": ""}, "version", "must not be empty"),
    ({"epoch": 2}, "epoch", "did you mean epochs?"),
    ({"learningrate": 0.1}, "learningrate", "did you mean learning_rate?"),
    ({"batchsize": 8}, "batchsize", "did you mean batch_size?"),
])
def test_a_bad_client_setting_is_refused_naming_the_field_and_why(raw, field, why):
    error = refusal(validate_client_config, raw)
    assert error.code == "client_config_invalid"
    assert error.field == f"client_config.{field}" and why in error.message


def test_client_config_must_be_an_object():
    error = refusal(validate_client_config, ["batch_size", 8])
    assert error.code == "client_config_invalid" and error.field == "client_config"


# ----------------------------------------------------------------------------- stored configs


def test_a_stored_config_refused_today_is_read_without_its_offending_keys():
    stored = {"max_diffs": 4, "num_cycle": 3, "strategy": "fedadam", "cycle_length": 1e12}
    config, ignored = read_leniently(ServerConfig, stored)
    assert (config.max_diffs, config.num_cycles, config.cycle_length) == (4, None, 3600.0)
    assert config.strategy == {"name": "fedadam"}
    assert len(ignored) == 2 and any("num_cycle" in line for line in ignored)
    assert read_leniently(ServerConfig, {"max_diffs": 2}) == (validate_server_config(
        {"max_diffs": 2}), [])


@pytest.mark.parametrize("stored", [None, {}, [], "garbage", {"max_diffs": "x", "min_diffs": 9},
                                    {"max_diffs": 2, "min_diffs": 5, "max_workers": 1}])
def test_reading_a_stored_config_never_raises(stored):
    config, _ = read_leniently(ServerConfig, stored)
    assert config.min_diffs <= config.max_diffs <= config.max_workers


# ----------------------------------------------------------------------------- docs


@pytest.mark.parametrize("model", [ServerConfig, ClientConfig, DifferentialPrivacyConfig])
def test_docs_tables_are_generated_from_the_models(model):
    docs = (ROOT / "docs/node.md").read_text()
    assert markdown_table(model) in docs, (
        f"docs/node.md's {model.CONFIG_NAME} table is out of date: paste the output of "
        "`python -m fedgrid_protocol.configs`")
    for name, info in model.model_fields.items():
        assert f"| `{name}` |" in docs
        assert info.description and "doc_default" in (info.json_schema_extra or {}), name
