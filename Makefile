# One command surface. `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
# compiled modules are cached: every test process and service starts much faster
unexport PYTHONDONTWRITEBYTECODE
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := shared shared/testkit services/territory-registry services/action-tracker services/funding-ledger services/site-catalog services/reporting
STAMP := $(VENV)/.installed
# front-end packages (npm, pinned by frontend/package-lock.json), built into frontend/dist/
ASSETS := frontend/dist/manifest.json

.PHONY: install lint lint-openapi test test-tools test-unit test-integration e2e up down reset infra-up infra-down demo bench schemas clean

$(STAMP): constraints.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$$(grep '^uv==' constraints.txt | cut -d= -f3)"
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt $(foreach p,$(PACKAGES),-e $(p)) \
		pytest pytest-asyncio pytest-timeout hypothesis schemathesis ruff mypy types-pyyaml pyyaml psutil openpyxl aiohttp playwright frictionless \
		openapi-core openapi-spec-validator openapi-python-client standardwebhooks
	@ldconfig -p | grep -q libpangoft2-1.0 || bash -c '. deploy/local/common.sh && apt_install libpango-1.0-0 libpangoft2-1.0-0'
	@touch $(STAMP)

$(ASSETS): frontend/package.json frontend/package-lock.json frontend/build.mjs
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

install: $(STAMP) $(ASSETS) ## create .venv, install every package (pinned by constraints.txt) and build the front-end assets

lint: install ## ruff + mypy + the layout check (docs/conventions.md) + the OpenAPI documents' lint
	$(BIN)/ruff check .
	$(BIN)/python -m ti_shared.devtools.check_layout .
	$(BIN)/mypy shared/src shared/testkit/src services/*/src bench
	@# each service's fake repository keeps the real one's signatures (one run each: their tests are packages named alike)
	@for f in $(wildcard services/*/tests/unit/fakes.py); do $(BIN)/mypy --no-error-summary $$f || exit 1; done
	@$(MAKE) --no-print-directory lint-openapi

# every service's document and the single base URL's: valid (openapi-spec-validator) and lint-free
# (Redocly CLI's recommended rules, redocly.yaml; pinned in frontend/package.json)
lint-openapi: install
	@rm -rf var/openapi && $(BIN)/ti openapi --out var/openapi >/dev/null
	$(BIN)/openapi-spec-validator var/openapi/*.json
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1 \
		frontend/node_modules/.bin/redocly lint --config redocly.yaml --format=summary var/openapi/*.json

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

TEST_SUITES := shared/tests shared/testkit/tests deploy/tests $(wildcard services/*/tests) examples/partner-tests tests-e2e

# one pytest run per suite (each service's tests are a package of their own), then one summary line
# the browser tests drive Debian's headless Chromium; the Bilan's PDF is read back with pdftotext
test-tools:
	@command -v chromium >/dev/null && command -v pdftotext >/dev/null || bash -c '. deploy/local/common.sh && apt_install chromium poppler-utils'

test: infra-up test-tools ## unit, integration, browser and end-to-end tests against real PostgreSQL and Kafka
	@rm -rf var/test-results && mkdir -p var/test-results
	@source var/local.env; status=0; for suite in $(TEST_SUITES); do \
		echo "=== $$suite"; \
		$(BIN)/python -m pytest -q $$suite --junitxml=var/test-results/$$(echo $$suite | tr / _).xml || status=1; \
	done; \
	$(BIN)/python -m ti_shared.devtools.test_summary var/test-results; \
	exit $$status

test-unit: install ## the tests that need neither PostgreSQL nor Kafka, one run per suite
	@status=0; for suite in shared/tests $(wildcard services/*/tests); do \
		$(BIN)/python -m pytest -q -m "not integration" $$suite || status=1; \
	done; exit $$status

e2e: infra-up
	source var/local.env && $(BIN)/python -m pytest -q tests-e2e

demo: install ## the whole platform in one process on 127.0.0.1:8000, loaded with the demo programme
	@$(BIN)/python -c "import ti_demo" 2>/dev/null || { echo "The demo programme is not available yet (see docs/)." >&2; exit 1; }
	$(BIN)/ti demo run

bench: infra-up ## benchmarks with their baselines (BENCH_SCALE=small for the quick mode)
	@test -f bench/run.py || { echo "bench/ is not written yet" >&2; exit 1; }
	@command -v wrk >/dev/null || bash -c '. deploy/local/common.sh && apt_install wrk'
	source var/local.env && $(BIN)/python bench/run.py

schemas: install ## rewrite the committed JSON Schemas of the events from the code
	@for s in services/*/; do $(BIN)/ti schemas write "$$(basename $$s)" || exit 1; done

clean:
	rm -rf $(VENV) var
