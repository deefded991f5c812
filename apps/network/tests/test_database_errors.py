"""A Network that cannot use its database says so in one line and exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys

from fedgrid_server.testing import free_port, server_env


def test_an_unusable_database_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path}/missing-dir/network.db"
    env = server_env(os.environ, drop=("GRID_ADMIN_TOKEN", "NETWORK_SECRET"), database_url=url)
    finished = subprocess.run(
        [sys.executable, "-m", "fedgrid_network", "--host", "127.0.0.1", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "data"), "--admin-token=t", "--network-secret=s"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert finished.returncode != 0
    assert finished.stderr.splitlines() == [
        f"fedgrid-network: cannot use the database {url}: unable to open database file"
    ]
