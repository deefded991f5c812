"""The shared command-line pieces, and `serve()` in a real process started by the shared launcher."""

from __future__ import annotations

import argparse
import signal
import textwrap

import pytest
import requests

from fedgrid_server import cli, testing


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="test")
    cli.add_listen_arguments(parser, env_prefix="GRID_THING", default_port=6000)
    cli.add_database_arguments(parser)
    cli.add_log_level_argument(parser)
    return parser


def test_flags_then_pygrid_environment_then_defaults(monkeypatch):
    for name in ("GRID_THING_PORT", "GRID_THING_HOST", "DATABASE_URL", "FEDGRID_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    args = parser().parse_args([])
    assert (args.port, args.host, args.database_url, args.log_level) == (6000, "0.0.0.0", None, "INFO")
    monkeypatch.setenv("GRID_THING_PORT", "6123")
    monkeypatch.setenv("GRID_THING_HOST", "127.0.0.2")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/thing")
    args = parser().parse_args([])
    assert (args.port, args.host, cli.database_url(args)) == (6123, "127.0.0.2",
                                                             "postgresql://u:p@db/thing")
    args = parser().parse_args(["-p", "6001", "--start_local_db"])
    assert args.port == 6001 and cli.database_url(args) is None


def test_secret_key_from_the_environment(monkeypatch):
    config = argparse.Namespace(secret_key="random")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    cli.apply_secret_key(config)
    assert config.secret_key == "random"
    monkeypatch.setenv("SECRET_KEY", "from-env")
    cli.apply_secret_key(config)
    assert config.secret_key == "from-env"


SERVER = """
import sys

from fedgrid_server.cli import add_listen_arguments, add_log_level_argument, start
import argparse

parser = argparse.ArgumentParser()
add_listen_arguments(parser, env_prefix="GRID_THING", default_port=0)
add_log_level_argument(parser)
args = start(parser, sys.argv[1:])

import logging

from flask import Flask

from fedgrid_server.errors import register_error_handlers
from fedgrid_server.server import serve

app = Flask("thing")
app.get("/health")(lambda: {"status": "ok"})
register_error_handlers(app, name="Thing", log=logging.getLogger("fedgrid.thing"))
serve(app, args.host, args.port, name="Thing", on_stop=lambda: print("stopped cleanly", flush=True))
"""


class RunningThing(testing.ServerProcess):
    name = "Thing"


def test_serve_answers_until_sigterm_then_runs_on_stop(tmp_path):
    (tmp_path / "thing_server.py").write_text(textwrap.dedent(SERVER))
    port = testing.free_port()
    env = testing.server_env({"PYTHONPATH": str(tmp_path), "DATABASE_URL": "x", "PATH": "/bin"},
                             drop=["PATH"])
    assert env == {"PYTHONPATH": str(tmp_path)}
    process = testing.launch("thing_server", ["--host", "127.0.0.1", "--port", str(port)],
                             env=env, log_path=tmp_path / "thing.log")
    thing = RunningThing(url=f"http://127.0.0.1:{port}", port=port, admin_token="",
                         process=process, log_path=tmp_path / "thing.log")
    try:
        testing.wait_healthy(thing, timeout=30)
        missing = requests.get(thing.url + "/nowhere", timeout=5)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert "Fedgrid Thing listening on http://127.0.0.1:" in thing.log()
        assert "fedgrid.thing.server" in thing.log()
        thing.stop(signal.SIGTERM)
        assert process.returncode == 0
        assert "stopped cleanly" in thing.log() and "/nowhere" not in thing.log()  # no access log
    finally:
        thing.stop(signal.SIGKILL)


def test_wait_healthy_reports_an_exited_server_with_its_log(tmp_path):
    process = testing.launch("fedgrid_server.no_such_module", [], env={},
                             log_path=tmp_path / "gone.log")
    gone = RunningThing(url="http://127.0.0.1:9", port=9, admin_token="", process=process,
                        log_path=tmp_path / "gone.log")
    with pytest.raises(RuntimeError, match=r"the Thing exited with 1:\n.*No module named"):
        testing.wait_healthy(gone, timeout=30)


def test_wait_for_returns_the_first_truthy_value_or_fails_naming_what():
    values = iter([0, None, "yes"])
    assert testing.wait_for(lambda: next(values), timeout=5, interval=0) == "yes"
    with pytest.raises(AssertionError, match="waiting for nothing"):
        testing.wait_for(lambda: False, timeout=0.05, interval=0.01, what="nothing")
