# One command surface. `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
# compiled modules are cached: every test process and service starts much faster
unexport PYTHONDONTWRITEBYTECODE
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := shared services/territory-registry services/action-tracker services/funding-ledger services/site-catalog services/reporting
STAMP := $(VENV)/.installed

.PHONY: install lint test test-unit test-integration e2e up down reset infra-up infra-down demo bench schemas clean

$(STAMP): constraints.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$$(grep '^uv==' constraints.txt | cut -d= -f3)"
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt $(foreach p,$(PACKAGES),-e $(p)) \
		pytest pytest-asyncio pytest-timeout hypothesis schemathesis ruff mypy types-pyyaml pyyaml psutil openpyxl
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install every package (pinned by constraints.txt)

lint: install ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/mypy shared/src services/*/src

infra-up: install
	@bash deploy/local/up.sh

infra-down:
	@bash deploy/local/down.sh

up: infra-up ## PostgreSQL, Kafka and the five services on 127.0.0.1:8001-8005
	@if [ -f deploy/local/services.sh ]; then bash deploy/local/services.sh start; fi

down: ## stop the services and the infrastructure started by `make up`
	@if [ -f deploy/local/services.sh ]; then bash deploy/local/services.sh stop; fi
	@bash deploy/local/down.sh

reset: ## wipe the local databases and topics (a fresh platform)
	@bash deploy/local/reset.sh

test: infra-up ## unit, integration and end-to-end tests against real PostgreSQL and Kafka
	source var/local.env && $(BIN)/python -m pytest -q shared/tests deploy/tests services/*/tests $(if $(wildcard tests-e2e/test_*.py),tests-e2e,)

test-unit: install
	$(BIN)/python -m pytest -q -m "not integration" shared/tests services/*/tests

e2e: infra-up
	source var/local.env && $(BIN)/python -m pytest -q tests-e2e

demo: install ## the whole platform in one process on 127.0.0.1:8000, loaded with the demo programme
	@$(BIN)/python -c "import ti_demo" 2>/dev/null || { echo "The demo programme is not available yet (see docs/)." >&2; exit 1; }
	$(BIN)/ti demo run

bench: infra-up ## benchmarks with their baselines (BENCH_SCALE=small for the quick mode)
	@test -f bench/run.py || { echo "bench/ is not written yet" >&2; exit 1; }
	source var/local.env && $(BIN)/python bench/run.py

schemas: install ## rewrite the committed JSON Schemas of the events from the code
	@for s in services/*/; do $(BIN)/ti schemas write "$$(basename $$s)" || exit 1; done

clean:
	rm -rf $(VENV) var
