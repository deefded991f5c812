"""server_config parsing: defaults, over-selection, and clear refusals."""

from __future__ import annotations

import pytest

from fedgrid_node.cycles.server_config import ServerConfigError, parse_server_config


def test_defaults_over_select_thirty_percent_above_the_goal():
    config = parse_server_config({"max_diffs": 10})
    assert config.max_workers == 13 and config.min_diffs == 1
    assert parse_server_config({"max_diffs": 3}).max_workers == 4  # ceil(3.9)
    assert parse_server_config({}).requires_speed_test is False
    assert parse_server_config({"maximum_ping": 50}).requires_speed_test is True


def test_public_view_hides_authentication_secrets():
    config = parse_server_config({"authentication": {"type": "jwt", "secret": "x" * 40}})
    assert config.public()["authentication"] == {"type": "jwt"}


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"max_diffs": 0}, "max_diffs"),
        ({"max_diffs": 2.5}, "max_diffs"),
        ({"max_diffs": True}, "max_diffs"),
        ({"max_diffs": 2, "min_diffs": 3}, "min_diffs"),
        ({"max_diffs": 5, "max_workers": 4}, "max_workers"),
        ({"pool_selection": "fastest"}, "pool_selection"),
        ({"quorum_policy": "pray"}, "quorum_policy"),
        ({"cycle_length": -1}, "cycle_length"),
        ({"minimum_download_speed": "fast"}, "minimum_download_speed"),
        ({"strategy": {"name": "fedmagic"}}, "strategy"),
        ({"strategy": {"name": "fedavg", "server_learning_rate": -1}}, "strategy"),
        ({"strategy": {"name": "fedavg", "unknown_option": 1}}, "strategy"),
        ([], "server_config"),
    ],
)
def test_bad_settings_name_the_key(raw, key):
    with pytest.raises(ServerConfigError, match=key):
        parse_server_config(raw)
