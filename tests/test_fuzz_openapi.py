"""A bounded schemathesis run over both OpenAPI documents, against a real Node and a real Network
(issue 16): every generated request, valid or not, gets an answer that is no 5xx, whose error body is
JSON, and that conforms to what the document says (status code, content type, headers, schema).
Afterwards neither server's log holds a traceback. On the Node, half the requests name a model that
is hosted, a worker holding a place and its request key, so they reach the events' real work.

It lives here, not under apps/*/tests, because it runs both servers' documents with one harness and
starts the Node with tests/support's launcher.

Deterministic for CI: hypothesis is derandomized (the same cases on every run), keeps no example
database, and has no deadline (a loaded CI machine must not turn slowness into a failure). The run is
bounded by MAX_EXAMPLES per operation and generation mode.
"""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fedgrid_network import openapi as network_openapi
from fedgrid_node import dashboard as node_dashboard
from fedgrid_node import openapi as node_openapi
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends, make_database_url
from tests.support.models import logistic_regression, unique_name
from tests.support.node_process import start_node

MAX_EXAMPLES = 100

# Answers the HTTP server itself gives before any route runs (gevent: request line over 8 KiB, too
# many or too large headers), the same JSON error on every route (docs/node.md), so
# no operation lists them. Negative cases with many extra query parameters reach 414.
SERVER_LEVEL_STATUSES = {414, 431}


def status_code_documented_or_server_level(ctx, response, case):
    if response.status_code in SERVER_LEVEL_STATUSES:
        return None
    return status_code_conformance(ctx, response, case)


# Checked on every answer; `not_a_server_error` is the 5xx rule, the others are "the answer is what
# the document says". Left out on purpose: schemathesis' opinion checks (positive_data_acceptance,
# negative_data_rejection, ignored_auth, use_after_free, ...), which judge API design, not conformance.
CHECKS = [not_a_server_error, status_code_documented_or_server_level, content_type_conformance,
          response_headers_conformance, response_schema_conformance]

# Generation depends on nothing but the seed: no values taken from earlier answers (tokens, ids and
# ports differ between runs) and no feedback from error messages.
CONFIG = schemathesis.Config.from_dict({
    "generation": {"deterministic": True},
    "phases": {"fuzzing": {"extra-data-sources": {"responses": False},
                           "error-feedback": {"enabled": False}}},
})

# Operations not fuzzed, each with the reason; everything else in both documents is.
NOT_FUZZED = {
    # A WebSocket upgrade (101): a plain HTTP request to it proves nothing; the frames are fuzzed by
    # the hypothesis property tests of the frame parser and apps/node/tests/test_ws_frames.py.
    ("GET", "/ws"),
}

# Operations fuzzed with valid requests only: their inputs have no invalid value on the wire, so
# schemathesis can generate no invalid request (hypothesis would call the strategy unsatisfiable).
VALID_REQUESTS_ONLY = {
    # One path parameter of type string (any file name): every path segment is a string.
    ("GET", "/js/{filename}"),
    ("GET", "/static/{filename}"),
    # A body of any bytes (application/octet-stream): every body is valid.
    ("POST", "/model-centric/speed-test"),
    # Multipart bodies with binary parts: schemathesis 4.32 cannot generate invalid ones (it
    # raises "Unsupported type: 'Binary'" for some draws, so the run depends on the port in the
    # document's URL). Their hostile inputs have their own tests: apps/node/tests/test_hostile_input.py
    # (diffs, checkpoints, plans, nested JSON fields) and test_cycle_liveness.py.
    ("POST", "/model-centric/host-training"),
    ("POST", "/model-centric/report"),
}


def _fuzz_settings(function):
    return settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)(function)


@pytest.fixture(scope="module", params=database_backends())
def node(request, tmp_path_factory):
    """A Node on SQLite; on PostgreSQL, one of two replicas (--cluster) of one deployment, so
    the fuzzing reaches PostgreSQL's own limits (32-bit INTEGER ids) and the replicas' paths."""
    if request.param == "sqlite":
        running = start_node(data_dir=tmp_path_factory.mktemp("fuzz-node"))
        yield running
        running.stop()
        assert "Traceback" not in running.log(), running.log()
        return
    database = make_database_url("postgresql", tmp_path_factory.mktemp("fuzz-db"))
    replicas = [start_node(data_dir=tmp_path_factory.mktemp("fuzz-replica"),
                           database_url=database.url, extra_args=["--cluster"])
                for _ in range(2)]
    yield replicas[0]
    for replica in replicas:
        replica.stop()
    database.drop()
    for replica in replicas:
        assert "Traceback" not in replica.log(), replica.log()


@pytest.fixture(scope="module")
def hosted(node) -> dict[str, object]:
    """Values that name things which exist on the Node: a hosted model, its process, its plan, a
    worker holding a place in the open cycle and its request key. Generated requests take them
    in place of random ones half the time (see `_aim`), so the fuzzing reaches past "unknown
    model" into the events' real work: selection, downloads, reports, the admin views."""
    api = HttpApi(node.url, node.admin_token)
    plan, checkpoint = logistic_regression()
    name = unique_name("fuzz")
    answer = api.call("host-training", {"name": name, "version": "1.0",
                                        "client_config": {"batch_size": 8},
                                        "server_config": {"max_workers": 10_000, "max_diffs": 10_000,
                                                          "cycle_length": 3600}},
                      admin=True, blobs={"model": checkpoint, "plans/training_plan": plan})
    assert answer.status == 200, answer.body
    worker_id = api.call("authenticate", {"model_name": name, "model_version": "1.0"}).body["worker_id"]
    place = api.call("cycle-request", {"worker_id": worker_id, "model": name, "version": "1.0"}).body
    assert place["status"] == "accepted", place
    process_id = next(p["id"] for p in api.call("processes", admin=True).body["processes"]
                      if p["model"] == name)
    api.close()
    return {"name": name, "model": name, "model_name": name, "version": "1.0",
            "model_version": "1.0", "worker_id": worker_id, "request_key": place["request_key"],
            "plan_id": place["plans"]["training_plan"], "process": process_id, "number": 1,
            "checkpoint": 1}


def _aim(case, values: dict[str, object]) -> None:
    """Put the existing things' values in the fields of those names (query, path and JSON body);
    the other fields stay as generated, so a request stays valid or invalid as it was drawn."""
    for container in (case.query, case.path_parameters, case.body):
        if isinstance(container, dict):
            for key in container.keys() & values.keys():
                container[key] = values[key]


@pytest.fixture(scope="module")
def node_token(network):
    """A Node that really joined, so /heartbeat and /leave get fuzzed past their token check."""
    answer = requests.post(f"{network.url}/join", timeout=10,
                           json={"node_id": "fuzz-node", "address": "http://127.0.0.1:9"},
                           headers={"Authorization": f"Bearer {network.secret}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["node_token"]


@pytest.fixture(scope="module")
def dashboard_cookies(node):
    """A logged-in dashboard session, so the SESSION_PATHS get fuzzed past their login check."""
    browser = requests.Session()
    answer = browser.post(f"{node.url}/dashboard/login", data={"token": node.admin_token},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    return browser.cookies.get_dict()


@pytest.fixture(scope="module")
def node_schema(node):
    return _load(node.url)


def _load(url):
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=CONFIG)
    for method, path in NOT_FUZZED:
        schema = schema.exclude(method=method, path=path)
    return schema


@pytest.fixture(scope="module")
def network_schema(network):
    return _load(network.url)


def _credentials(case, tokens: dict[str, str]) -> dict[str, str]:
    """The Authorization header for the first security scheme the operation accepts."""
    for requirement in case.operation.definition.raw.get("security", []):
        for scheme in requirement:
            if scheme in tokens:
                return {"Authorization": f"Bearer {tokens[scheme]}"}
    return {}


def _check_answer(case, tokens, cookies):
    headers = _credentials(case, tokens)
    response = case.call_and_validate(headers=headers, cookies=cookies, checks=CHECKS, timeout=30)
    if response.status_code >= 400:
        # An error is the protocol's JSON error unless the document names another media type for
        # that status (the dashboard's login page); content_type_conformance checks that one.
        documented = case.operation.definition.raw.get("responses", {}).get(
            str(response.status_code), {}).get("content", {})
        content_type = response.headers.get("content-type", [""])
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        if not documented or "application/json" in content_type:
            assert "application/json" in content_type, (response.status_code, response.content[:300])
            body = json.loads(response.content)
            assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
            assert body["error"]["status"] == response.status_code, body
    return response


# Dashboard routes that act only for a logged-in browser: fuzzed with its session cookie.
SESSION_PATHS = {"/dashboard/checkpoint", "/dashboard/process/confirm",
                 "/dashboard/process/{control}"}

# Not aimed at the hosted model: they would pause, stop or delete it, and the operations fuzzed
# after them would find nothing to reach. Their effects have their own tests
# (apps/node/tests/test_process_control.py, test_dashboard_control.py).
NOT_AIMED = {"/model-centric/pause-process", "/model-centric/resume-process",
             "/model-centric/stop-process", "/model-centric/delete-process",
             "/dashboard/process/{control}", "/dashboard/process/confirm"}


def _operations(document: dict) -> list[tuple[str, str]]:
    return sorted((method.upper(), path) for path, item in document["paths"].items()
                  for method in item if method in ("get", "put", "post", "delete", "patch"))


# The Node's document as served: the dashboard adds its routes to the protocol's.
_NODE_DOCUMENT = node_openapi.openapi_document("0")
_NODE_DOCUMENT["paths"].update(node_dashboard.OPENAPI_PATHS)
NODE_OPERATIONS = [op for op in _operations(_NODE_DOCUMENT) if op not in NOT_FUZZED]
NETWORK_OPERATIONS = [op for op in _operations(network_openapi.openapi_document("0"))
                      if op not in NOT_FUZZED]


def _fuzz(schema, method: str, path: str, tokens: dict[str, str],
          cookies: dict[str, str] | None = None, existing: dict[str, object] | None = None) -> None:
    """MAX_EXAMPLES valid and MAX_EXAMPLES invalid requests to one operation; with ``existing``,
    about half of them aimed at things that exist (`_aim`)."""
    operation = schema[path][method]
    modes = [GenerationMode.POSITIVE]
    # An operation that takes no input at all has no invalid request to generate (hypothesis would
    # call the strategy unsatisfiable), nor has one in VALID_REQUESTS_ONLY; every other one gets
    # invalid requests too.
    takes_input = any(len(inputs) for inputs in (operation.path_parameters, operation.query,
                                                 operation.headers, operation.cookies, operation.body))
    if takes_input and (method, path) not in VALID_REQUESTS_ONLY:
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:
        @given(case=operation.as_strategy(generation_mode=mode), aimed=st.booleans())
        @_fuzz_settings
        def run(case, aimed):
            if aimed and existing:
                _aim(case, existing)
            _check_answer(case, tokens, cookies or {})

        run()


def test_the_fuzzed_operations_are_the_served_ones(node_schema, network_schema):
    """The operations parametrized below (read from the protocol package at collection) are exactly
    those the running servers document, less NOT_FUZZED."""
    for schema, fuzzed in ((node_schema, NODE_OPERATIONS), (network_schema, NETWORK_OPERATIONS)):
        assert [op for op in _operations(schema.raw_schema) if op not in NOT_FUZZED] == fuzzed


@pytest.mark.parametrize(("method", "path"), NODE_OPERATIONS)
def test_node_answers_every_generated_request_as_documented(node, node_schema, dashboard_cookies,
                                                            hosted, method, path):
    cookies = dashboard_cookies if path in SESSION_PATHS else {}
    _fuzz(node_schema, method, path, {"adminToken": node.admin_token}, cookies,
          None if path in NOT_AIMED else hosted)


@pytest.mark.parametrize(("method", "path"), NETWORK_OPERATIONS)
def test_network_answers_every_generated_request_as_documented(network, network_schema, node_token,
                                                               method, path):
    _fuzz(network_schema, method, path, {"adminToken": network.admin_token,
                                         "registrationSecret": network.secret,
                                         "nodeToken": node_token})
