# Fedgrid: every set-up step lives here, so a fresh machine needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Tests create their own throw-away databases with this role (see scripts/postgres.sh).
export FEDGRID_TEST_POSTGRES_URL ?= postgresql://fedgrid:fedgrid@127.0.0.1:5432/postgres

JS := clients/js
JS_STAMP := $(JS)/node_modules/.installed

.PHONY: venv test lint pytest js js-test protocol system-deps demo bench postgres clean

venv: $(STAMP)

# torch is pinned exactly (see the script): the local CPU wheel satisfies it, a range pulls CUDA.
# flock: two make runs (or two developers' shells) must not pip-install into the venv at once.
$(STAMP): protocol/pyproject.toml apps/common/pyproject.toml plans/pyproject.toml apps/node/pyproject.toml apps/network/pyproject.toml clients/python/pyproject.toml requirements-dev.txt
	flock /tmp/fedgrid-venv.lock bash scripts/install-venv.sh "$(PYTHON)" "$(VENV)"
	touch $@

postgres:
	bash scripts/postgres.sh

# Debian packages the tests need (chromium for browser tests, docker-compose to validate the file,
# haproxy for the load-balancer tests).
system-deps:
	bash scripts/install-system-deps.sh

# package-lock.json pins every JS dependency; npm ci installs exactly that. onnxruntime-node (optional,
# Node.js devices' native runtime) carries its CPU binaries; ONNXRUNTIME_NODE_INSTALL=skip stops its
# install script from fetching optional CUDA files from outside the npm registry.
$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
	touch $@

# The files generated from the protocol package (the JS SDK's error table and types, the SDK docs'
# error tables). They are committed, so building the JS SDK needs no Python; a test on each side
# fails when they are stale.
protocol: $(STAMP)
	$(PY) -m fedgrid_protocol.export

# The browser bundle and ONNX Runtime's WASM files, which the Node serves at /js/.
js: $(JS_STAMP) $(STAMP)
	cd $(JS) && npm run build

# The SDK's suites, then the conformance vectors replayed by a checker written from plans/SPEC.md alone.
js-test: js system-deps
	cd $(JS) && npm test
	node plans/conformance/check_onnxruntime_web.mjs

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collected nothing; that is a broken suite here, so say it plainly.
pytest: $(STAMP) postgres system-deps js
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

test: lint pytest js-test

demo: $(STAMP)
	$(PY) scripts/demo.py

# Benchmarks print figures and ratios against baselines measured in the same run; they assert nothing.
bench: $(STAMP) postgres js system-deps
	$(PY) plans/benchmarks/executor_speed.py
	$(PY) apps/node/benchmarks/aggregation_throughput.py
	$(PY) apps/node/benchmarks/report_ingest.py
	$(PY) apps/node/benchmarks/ws_report_cost.py
	$(PY) apps/node/benchmarks/cycle_request_rate.py
	$(PY) apps/node/benchmarks/replicas.py
	$(PY) apps/node/benchmarks/deadline_under_load.py
	$(PY) apps/node/benchmarks/postgres_under_gevent.py
	$(PY) apps/node/benchmarks/robust_close.py
	$(PY) apps/node/benchmarks/secagg_cost.py
	$(PY) clients/python/benchmarks/learning_quality.py
	$(PY) clients/python/benchmarks/time_to_accuracy.py
	$(PY) clients/python/benchmarks/compressed_updates.py
	cd $(JS) && npm run bench

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache $(JS)/node_modules $(JS)/dist
