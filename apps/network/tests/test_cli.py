"""The `fedgrid-network` command: PyGrid-compatible flags and environment, generated secrets."""

from __future__ import annotations

import requests

from fedgrid_network.cli import build_parser
from fedgrid_network.testing import free_port, start_network, wait_healthy


def test_flags_fall_back_to_pygrid_environment_variables(monkeypatch):
    monkeypatch.setenv("GRID_NETWORK_PORT", "7123")
    monkeypatch.setenv("GRID_NETWORK_HOST", "127.0.0.2")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/network")
    monkeypatch.setenv("NETWORK_SECRET", "from-env")
    args = build_parser().parse_args([])
    assert (args.port, args.host, args.database_url, args.network_secret) == (
        7123, "127.0.0.2", "postgresql://u:p@db/network", "from-env")
    assert build_parser().parse_args(["--port", "7001"]).port == 7001
    monkeypatch.delenv("GRID_NETWORK_PORT")
    assert build_parser().parse_args([]).port == 7000
    assert build_parser().parse_args(["--start_local_db"]).start_local_db


def test_secrets_not_given_are_generated_once_kept_private_and_printed_once(tmp_path):
    data = tmp_path / "network"
    network = start_network(data_dir=data, secret="", admin_token="")
    try:
        secret = (data / "network-secret").read_text().strip()
        assert len(secret) >= 40 and (data / "network-secret").stat().st_mode & 0o077 == 0
        assert (data / "admin-token").stat().st_mode & 0o077 == 0
        assert network.log().count(secret) == 1  # on the console once, for the operator
        joined = requests.post(f"{network.url}/join", json={"node_id": "a", "address": "http://a:1"},
                               headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        assert joined.status_code == 200
    finally:
        network.stop()
    # Restarted on the same data directory: the same secret, not printed again; the registry
    # (SQLite in the data directory) still knows Node "a".
    again = start_network(data_dir=data, port=free_port(), secret="", admin_token="", wait=False)
    try:
        wait_healthy(again)
        assert "Generated" not in again.log()
        assert set(again.nodes()) == {"a"}
    finally:
        again.stop()
