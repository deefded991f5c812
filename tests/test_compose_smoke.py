"""docker-compose.yml, checked without Docker.

1. Debian's docker-compose (v1) validates the file offline (`docker-compose config -q`).
2. The load balancer's configuration (deploy/haproxy/haproxy.cfg, mounted into `node-balancer`):
   Debian's haproxy checks it (`haproxy -c`), and the settings the replicated Node depends on are
   there (WebSocket tunnel timeout, long-poll timeouts, health checks on /health, no retry of a
   request that reached a replica, replicas found through Docker's DNS).
3. The "compose smoke": read the file, and start every Fedgrid service's own command with its own
   environment on this machine: hostnames (`postgres`, `network`, `alice`, ...) become 127.0.0.1,
   ports become free ports, named volumes become temporary directories, and each service gets a
   fresh database of its own on the local PostgreSQL (FEDGRID_TEST_POSTGRES_URL) in place of the
   `postgres` and `databases` services. The `haproxy` image is played by Debian's haproxy running
   the mounted configuration (tests/support/load_balancer.py), in front of one replica of `node`
   (compose's default scale). Then: all five Nodes registered with the Network (the replicated one
   with the balancer's address), `route` finds the Node hosting a model, a device routed through
   the Network completes a cycle, and the balancer's own health check passes.

The one deliberate change to the file's settings: heartbeats every second instead of ten, so the
test does not wait for the Network to hear about the hosted model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
import requests

from fedgrid_network.testing import free_port, wait_for
from fedgrid_plans import tensors
from fedgrid_protocol.errors import ERROR_CODES
from fedgrid_protocol.events import MAX_WAIT_SECONDS
from tests.support.databases import database_backends, make_database_url
from tests.support.load_balancer import (
    LoadBalancer,
    duration_seconds,
    loopback_config,
    parse_config,
)
from tests.support.models import logistic_regression

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
NODES = ("alice", "bob", "charlie", "dan")
REPLICATED = "node"  # the service scaled with `--scale node=N`, behind BALANCER
BALANCER = "node-balancer"
INSTALL_HINT = "run scripts/install-system-deps.sh (as root) to install docker-compose and haproxy"
# What an operator would put in .env; the Nodes' admin tokens are set so the test can host.
TEST_ENV = {
    "FEDGRID_NETWORK_SECRET": "smoke-network-secret",
    "NETWORK_ADMIN_TOKEN": "smoke-network-admin",
    **{f"{node.upper()}_ADMIN_TOKEN": f"smoke-admin-{node}" for node in NODES},
    "REPLICATED_ADMIN_TOKEN": "smoke-admin-replicated",
    "REPLICATED_SECRET_KEY": "smoke-secret-key-replicated",
}
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}, and $$ for a literal $."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        present = name in env and (env[name] != "" or operator not in (":-", ":?"))
        if operator in ("?", ":?") and not present:
            raise AssertionError(f"compose needs {name}: {argument}")
        if present:
            return env[name]
        return argument if operator in ("-", ":-") else ""

    return INTERPOLATION.sub(substitute, value)


def load_compose() -> dict:
    text = COMPOSE_FILE.read_text()
    try:
        import yaml
    except ImportError:
        # Debian's docker-compose brings python3-yaml to the system Python: borrow it.
        converted = subprocess.run(
            ["/usr/bin/python3", "-c",
             "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
            input=text, capture_output=True, text=True, timeout=30,
        )
        assert converted.returncode == 0, f"PyYAML is needed to read the compose file; {INSTALL_HINT}"
        return json.loads(converted.stdout)
    return yaml.safe_load(text)


def test_compose_file_is_valid_for_compose_v1_and_v2():
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, f"docker-compose is not installed; {INSTALL_HINT}"
    env = {**os.environ, **TEST_ENV}
    checked = subprocess.run([docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    # Without the registration secret, compose refuses to start anything (no insecure default).
    env.pop("FEDGRID_NETWORK_SECRET")
    refused = subprocess.run([docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "FEDGRID_NETWORK_SECRET" in refused.stderr

    compose = load_compose()
    assert "version" not in compose  # Compose v2 warns about it; the spec dropped it
    services = compose["services"]
    assert {"postgres", "network", *NODES, REPLICATED, BALANCER} <= set(services)
    postgres = services["postgres"]
    assert postgres["healthcheck"] and any(":/var/lib/postgresql/data" in v for v in postgres["volumes"])
    urls = {name: interpolate(services[name]["environment"]["DATABASE_URL"], TEST_ENV)
            for name in ("network", *NODES, REPLICATED)}
    assert len({urlsplit(url).path for url in urls.values()}) == 6  # a database each
    assert all(urlsplit(url).hostname == "postgres" for url in urls.values())
    created = interpolate(services["databases"]["environment"]["FEDGRID_DATABASES"], TEST_ENV)
    assert {urlsplit(url).path.lstrip("/") for url in urls.values()} == set(created.split())
    for node in NODES:
        environment = services[node]["environment"]
        assert environment["NODE_ID"] == node and environment["NETWORK"] == "http://network:7000"
    # The Node image installs the torch-free core of fedgrid-plans: no extras, no torch.
    installs = [line for line in (ROOT / "apps/node/Dockerfile").read_text().splitlines()
                if "pip install" in line]
    assert installs and not any("[" in line or "torch" in line for line in installs)


def test_the_replicated_node_scales_behind_the_balancer_at_one_address():
    services = {name: interpolate(service, TEST_ENV)
                for name, service in load_compose()["services"].items()}
    replicated, balancer = services[REPLICATED], services[BALANCER]
    # `--scale node=N` needs a service without a fixed container name or host port.
    assert "container_name" not in replicated and "ports" not in replicated
    assert replicated["command"] == ["fedgrid-node"] and replicated["environment"]["FEDGRID_CLUSTER"] == "1"
    assert replicated["healthcheck"] == services["alice"]["healthcheck"]
    assert replicated["restart"] == balancer["restart"] == "unless-stopped"
    # Every replica gives the Network the balancer's published address.
    published = {int(mapping.split(":")[0]): int(mapping.split(":")[1]) for mapping in balancer["ports"]}
    address = urlsplit(replicated["environment"]["ADDRESS"])
    assert address.hostname == "localhost" and address.port in published
    assert str(balancer["image"]).startswith("haproxy:")
    mounted = {volume.split(":")[1]: volume for volume in balancer["volumes"]}
    assert mounted["/usr/local/etc/haproxy/haproxy.cfg"] == (
        "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro")

    config = parse_config((ROOT / "deploy/haproxy/haproxy.cfg").read_text())
    defaults, backend = config["defaults"], config["backend nodes"]
    timeouts = {words[1]: duration_seconds(words[2]) for words in defaults if words[0] == "timeout"}
    assert ["mode", "http"] in defaults  # HTTP mode: Upgrade to WebSocket is carried
    assert timeouts["tunnel"] >= 3600  # an upgraded WebSocket may stay quiet between cycles
    # A long-poll is answered within MAX_WAIT_SECONDS: the balancer must wait longer than that.
    assert timeouts["server"] >= 4 * MAX_WAIT_SECONDS and timeouts["client"] >= timeouts["server"]
    assert timeouts["http-keep-alive"] < 60  # below the Node's idle timeout: the balancer closes first
    assert ["option", "forwardfor"] in config["frontend fedgrid"]
    assert ["bind", f":{published[address.port]}"] in config["frontend fedgrid"]
    # Health: GET /health every 500 ms, two failures take a replica out.
    assert ["option", "httpchk"] in backend
    send = next(words for words in backend if words[:2] == ["http-check", "send"])
    assert send[2:6] == ["meth", "GET", "uri", "/health"]
    assert ["http-check", "expect", "status", "200"] in backend
    server_defaults = next(words for words in backend if words[0] == "default-server")
    options = dict(zip(server_defaults[1::2], server_defaults[2::2], strict=True))
    assert duration_seconds(options["inter"]) * int(options["fall"]) <= 1
    # Retries: connection failures for every request, an empty answer only for GET/HEAD.
    assert ["retry-on", "conn-failure", "empty-response"] in backend
    assert ["http-request", "disable-l7-retry", "unless", "METH_GET"] in backend
    assert ["option", "redispatch", "1"] in backend
    # Replicas: up to 10 `node` containers found through Docker's DNS, none needed at start.
    template = next(words for words in backend if words[0] == "server-template")
    assert template[3] == f"{REPLICATED}:{replicated['expose'][0]}"
    assert {"check", "init-addr", "none", "resolvers", "docker"} <= set(template[4:])
    assert ["nameserver", "dns", "127.0.0.11:53"] in config["resolvers docker"]

    # What HAProxy answers itself is JSON with a code of the protocol's table, as the Nodes answer.
    answers = {int(status): json.loads(body) for status, body in re.findall(
        r"^\s*http-error status (\d+) content-type application/json string '([^']*)'",
        (ROOT / "deploy/haproxy/haproxy.cfg").read_text(), re.MULTILINE)}
    assert set(answers) == {400, 408, 500, 501, 502, 503, 504}
    for status, body in answers.items():
        code = body["error"]["code"]
        assert body["error"]["status"] == status and body["error"]["message"]
        assert ERROR_CODES[code].status == status or code == "http_error", (status, code)


def test_haproxy_accepts_the_deployed_configuration_and_its_loopback_copy(tmp_path):
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(haproxy).exists(), f"haproxy is not installed; {INSTALL_HINT}"
    deployed = ROOT / "deploy/haproxy/haproxy.cfg"
    copy = tmp_path / "haproxy.cfg"
    copy.write_text(loopback_config(deployed.read_text(), port=free_port(), stats_port=free_port(),
                                    upstreams=["http://127.0.0.1:5001", "http://127.0.0.1:5002"]))
    for path in (deployed, copy):
        # The deployed file names Docker's resolver and `node` without resolving either here
        # (init-addr none): the check needs no DNS.
        checked = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True,
                                 timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "WARNING" not in checked.stdout + checked.stderr, checked.stdout + checked.stderr


class LocalDeployment:
    """The compose file's Fedgrid services as local processes."""

    def __init__(self, compose: dict, tmp_path: Path) -> None:
        self.services = {
            name: interpolate(service, TEST_ENV) for name, service in compose["services"].items()
        }
        self.tmp_path = tmp_path
        # The PostgreSQL images (the server and the one-shot `databases`) are played by the local
        # PostgreSQL server, the HAProxy image by Debian's haproxy with the mounted configuration;
        # everything else is one of our commands.
        images = {name: str(s.get("image", "")) for name, s in self.services.items()}
        self.balancers = [name for name, image in images.items() if image.startswith("haproxy:")]
        self.fedgrid = [name for name, image in images.items()
                        if not image.startswith(("postgres", "haproxy:"))]
        self.ports = {name: free_port() for name in (*self.fedgrid, *self.balancers)}
        self.container_ports: dict[str, int] = {}
        self.published: dict[int, str] = {}
        for name in self.ports:
            for mapping in self.services[name].get("ports", []):
                host_port, container_port = str(mapping).rsplit(":", 2)[-2:]
                self.container_ports[name] = int(container_port)
                self.published[int(host_port)] = name
            for container_port in self.services[name].get("expose", []):  # unpublished
                self.container_ports[name] = int(container_port)
        self.load_balancers: dict[str, LoadBalancer] = {}
        self.databases: dict[str, object] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    def rewrite_url(self, value: str) -> str:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
        if parts.scheme in ("postgres", "postgresql"):
            database = self.databases.setdefault(parts.path.lstrip("/"), make_database_url(
                "postgresql", self.tmp_path))
            return database.url
        if host in self.ports:  # http://alice:5000: another service, by its compose name
            return urlunsplit((parts.scheme, f"127.0.0.1:{self.ports[host]}", parts.path, "", ""))
        if host in ("localhost", "127.0.0.1") and port in self.published:  # a published port
            target = self.published[port]
            return urlunsplit((parts.scheme, f"127.0.0.1:{self.ports[target]}", parts.path, "", ""))
        return value

    def environment(self, name: str) -> dict[str, str]:
        service = self.services[name]
        volumes = {}
        for volume in service.get("volumes", []):
            source, target = str(volume).split(":")[:2]
            volumes[target] = self.tmp_path / name / source.strip("./")
        env = {}
        for key, value in (service.get("environment") or {}).items():
            value = "" if value is None else str(value)
            if re.match(r"^[a-z][a-z0-9+]*://", value):
                value = self.rewrite_url(value)
            elif value == "0.0.0.0":
                value = "127.0.0.1"  # bind loopback only: nothing leaves this machine
            elif key.endswith("_PORT") and value == str(self.container_ports.get(name)):
                value = str(self.ports[name])
            elif value in volumes:
                volumes[value].mkdir(parents=True, exist_ok=True)
                value = str(volumes[value])
            env[key] = value
        env["FEDGRID_HEARTBEAT_INTERVAL"] = "1"  # see the module docstring
        return env

    def command(self, name: str) -> list[str]:
        command = self.services[name]["command"]
        command = command.split() if isinstance(command, str) else list(command)
        # The images put our console scripts on PATH; here they live beside this Python.
        executable = Path(sys.executable).parent / command[0]
        assert executable.exists(), f"{command[0]} is not installed in {executable.parent}"
        return [str(executable), *command[1:]]

    def start(self) -> None:
        base = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "NETWORK", "NETWORK_SECRET", "GRID_ADMIN_TOKEN",
                             "NODE_ID", "ADDRESS", "SECRET_KEY")}
        for name in self.fedgrid:
            env = {**base, **self.environment(name)}
            log = open(self.tmp_path / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
            self.processes[name] = subprocess.Popen(
                self.command(name), env=env, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.tmp_path,
            )
            log.close()
        for name in self.balancers:
            self.load_balancers[name] = self.start_balancer(name)

    def start_balancer(self, name: str) -> LoadBalancer:
        """The mounted configuration, balancing over the local replica of the service its
        `server-template` names (compose's default scale, one)."""
        mounted = {volume.split(":")[1]: volume.split(":")[0]
                   for volume in self.services[name]["volumes"]}
        config = ROOT / mounted["/usr/local/etc/haproxy/haproxy.cfg"]
        template = next(words for words in parse_config(config.read_text())["backend nodes"]
                        if words[0] == "server-template")
        service, port = template[3].split(":")
        assert int(port) == self.container_ports[service], template
        return LoadBalancer([self.urls[service]], config=config, work_dir=self.tmp_path / name,
                            port=self.ports[name])

    def healthcheck(self, name: str) -> subprocess.CompletedProcess:
        """The service's compose healthcheck command, run here against its local port."""
        test = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        command = [part.replace(f"127.0.0.1/{self.container_ports[name]}",
                                f"127.0.0.1/{self.ports[name]}") for part in test[1:]]
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    def log(self, name: str) -> str:
        if name in self.load_balancers:
            return self.load_balancers[name].log()
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def wait_healthy(self) -> None:
        for name in self.fedgrid:
            def healthy(name=name):
                if self.processes[name].poll() is not None:
                    raise AssertionError(f"{name} exited:\n{self.log(name)}")
                try:
                    return requests.get(self.urls[name] + "/health", timeout=2).status_code == 200
                except requests.RequestException:
                    return False
            wait_for(healthy, timeout=90, what=f"{name} to be healthy")
        for balancer in self.load_balancers.values():
            balancer.wait_ready()

    def stop(self) -> None:
        for balancer in self.load_balancers.values():
            balancer.stop()
        # Nodes first (they say goodbye to the Network), then the Network: stopping it first would
        # make it wait for the Nodes' idle keep-alive connections.
        for group in ([p for n, p in self.processes.items() if n != "network"],
                      [p for n, p in self.processes.items() if n == "network"]):
            for process in group:
                if process.poll() is None:
                    process.terminate()
            for process in group:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for database in self.databases.values():
            database.drop()


# The deployment runs on PostgreSQL, like docker-compose.yml; like the PostgreSQL half of every
# other suite it is collected only where PostgreSQL is configured (`make test` always does).
@pytest.fixture(params=[b for b in database_backends() if b == "postgresql"])
def deployment(request, tmp_path):
    deployment = LocalDeployment(load_compose(), tmp_path)
    try:
        deployment.start()
        deployment.wait_healthy()
        yield deployment
    finally:
        deployment.stop()


def test_compose_smoke_nodes_register_route_and_a_routed_device_completes_a_cycle(deployment):
    network = deployment.urls["network"]
    assert requests.get(f"{network}/status", timeout=10).json()["kind"] == "network"

    replicated_id = deployment.services[REPLICATED]["environment"]["NODE_ID"]

    def registered():
        nodes = requests.get(f"{network}/nodes", timeout=10).json()["nodes"]
        online = {n["node_id"]: n for n in nodes if n["status"] == "online"}
        return online if set(online) == {*NODES, replicated_id} else None

    nodes = wait_for(registered, timeout=60, what="the five Nodes to register")
    for node in NODES:
        # Each Node told the Network the address from its ADDRESS (the published port).
        assert nodes[node]["address"] == deployment.urls[node]
    # The replicated Node's address is the balancer's, and the balancer reaches it.
    balancer = deployment.urls[BALANCER]
    assert nodes[replicated_id]["address"] == balancer
    status = requests.get(f"{balancer}/status", timeout=10).json()
    assert status["node_id"] == replicated_id and status["address"] == balancer
    checked = deployment.healthcheck(BALANCER)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A researcher hosts the tiny model on charlie, with the admin token compose gave charlie.
    charlie = deployment.urls["charlie"]
    plan, checkpoint = logistic_regression()
    hosted = requests.post(
        f"{charlie}/model-centric/host-training",
        data={"name": "compose-smoke", "version": "1",
              "client_config": json.dumps({"batch_size": 8, "lr": 0.1}),
              "server_config": json.dumps({"max_diffs": 1, "cycle_length": 120})},
        files={"model": ("model.safetensors", checkpoint),
               "plans[training_plan]": ("plan.fgplan", plan)},
        headers={"Authorization": f"Bearer {TEST_ENV['CHARLIE_ADMIN_TOKEN']}"}, timeout=60,
    )
    assert hosted.status_code == 200, hosted.text

    def routed():
        answer = requests.get(f"{network}/route", params={"model": "compose-smoke"}, timeout=10)
        return answer.json() if answer.status_code == 200 else None

    route = wait_for(routed, timeout=30, what="the Network to route compose-smoke")
    assert route["node_id"] == "charlie" and route["address"] == charlie
    missing = requests.get(f"{network}/route", params={"model": "not-hosted"}, timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"

    # A device that only knows the Network: route, then the raw model-centric flow on the Node.
    node = route["address"]
    worker = requests.post(f"{node}/model-centric/authenticate",
                           json={"model_name": "compose-smoke", "model_version": route["version"]},
                           timeout=10).json()["worker_id"]
    cycle = requests.post(f"{node}/model-centric/cycle-request",
                          json={"worker_id": worker, "model": "compose-smoke", "version": "1",
                                "ping": 5, "download": 50, "upload": 50}, timeout=10).json()
    assert cycle["status"] == "accepted", cycle
    key = {"worker_id": worker, "request_key": cycle["request_key"]}
    model = requests.get(f"{node}/model-centric/get-model",
                         params={**key, "model_id": cycle["model_id"]}, timeout=10)
    assert model.status_code == 200 and model.content == checkpoint
    downloaded = requests.get(f"{node}/model-centric/get-plan",
                              params={**key, "plan_id": cycle["plans"]["training_plan"]}, timeout=10)
    assert downloaded.content == plan
    params = tensors.decode(model.content)
    diff = {name: np.full(value.shape, 0.01, value.dtype) for name, value in params.items()}
    report = requests.post(f"{node}/model-centric/report",
                           params={**key, "num_samples": 32,
                                   "metrics": json.dumps({"loss": 0.5, "accuracy": 0.9})},
                           data=tensors.encode(diff),
                           headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert report.status_code == 200, report.text

    # The cycle closed into checkpoint 2 (max_diffs = 1) ...
    second = requests.get(f"{node}/model-centric/retrieve-model",
                          params={"name": "compose-smoke", "version": "1", "checkpoint": 2},
                          headers={"Authorization": f"Bearer {TEST_ENV['CHARLIE_ADMIN_TOKEN']}"},
                          timeout=10)
    assert second.status_code == 200, second.text
    new = tensors.decode(second.content)
    for name, value in params.items():
        np.testing.assert_allclose(new[name], value - 0.01, rtol=0, atol=1e-6)

    # ... and the Network hears of cycle 2 on checkpoint 2 with the next heartbeat.
    def advanced():
        found = requests.get(f"{network}/search-model", params={"model": "compose-smoke"},
                             timeout=10).json()["nodes"]
        return found and found[0]["process"]["checkpoint"] == 2 and found[0]["process"]["cycle"] == 2

    wait_for(advanced, timeout=30, what="the Network to see checkpoint 2")
    for name in deployment.fedgrid:
        assert "Traceback" not in deployment.log(name), deployment.log(name)
    time.sleep(0)  # (nothing left to wait for; the fixture stops everything)
