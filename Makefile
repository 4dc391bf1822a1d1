# ValueTier: `make demo` and `make test` work on a fresh clone with Python 3.11, make and the package index.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

DEMO_CUSTOMERS ?= 20000
DEMO_MONTHS ?= 36
DEMO_SEED ?= 42
DEMO_DIRTY_RATE ?= 0
UI_PORT ?= 3000
DEMO_DIR := $(CURDIR)/data/demo
# Only the demo hashes personal data with the public development key; `make run` on a bank's own
# landing without a key uses one generated for the account (~/.config/valuetier/pii.key).
DEMO_PII_KEY := $(if $(VALUETIER_PII_KEY)$(VALUETIER_PII_KEY_FILE),,VALUETIER_PII_KEY=development)

export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
export VALUETIER_WAREHOUSE ?= $(CURDIR)/data/warehouse/valuetier.duckdb

DBT_FILES := $(shell find dbt_project -path dbt_project/target -prune -o -type f \( -name '*.sql' -o -name '*.yml' \) -print)
MANIFEST := dbt_project/target/manifest.json

.PHONY: setup spark demo run ui docs test test-fast lint audit bench clean chromium

# The lock is installed by uv (pinned in the lock, itself installed by pip): about 30 s on a cold
# cache where pip takes about 100 s. `make INSTALLER=pip ...` installs with pip alone, for a network
# where only pip's own configuration reaches the package index.
INSTALLER ?= uv
UV_PIN := $(shell grep '^uv==' requirements.lock)

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
ifeq ($(INSTALLER),pip)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
else
	$(BIN)/pip install --quiet --disable-pip-version-check $(UV_PIN)
	$(BIN)/uv pip install --quiet --native-tls --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --native-tls --compile-bytecode --python $(BIN)/python --no-deps -e .
endif
	touch $@

# The optional Spark stack (dbt-spark's session method and pyspark, about 490 MB; docs/spark.md), on
# top of the main lock. pyspark comes as a source download built locally: about 75 s on a cold cache.
$(VENV)/.spark-installed: $(VENV)/.installed requirements-spark.lock
ifeq ($(INSTALLER),pip)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-spark.lock
else
	$(BIN)/uv pip install --quiet --native-tls --compile-bytecode --python $(BIN)/python -r requirements-spark.lock
endif
	touch $@

# Spark runs on a Java 17 or 21 runtime; Debian's default one is installed when there is none.
spark: $(VENV)/.spark-installed
	@command -v java >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq default-jre-headless >/dev/null; }

# Dagster loads dbt models from the manifest; build it whenever the dbt project changes.
$(MANIFEST): $(VENV)/.installed $(DBT_FILES)
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet
	touch $@

# Great Expectations' Data Docs load Bootstrap, jQuery, Vega... from public CDNs; ValueTier serves
# them from these files instead (valuetier/quality/data_docs.py), fetched from the npm registry and checked
# against the sha512 in the lock.
DATA_DOCS_ASSETS := $(VENV)/share/valuetier/data_docs_assets
$(DATA_DOCS_ASSETS)/.fetched: $(VENV)/.installed expectations/data_docs/assets.lock.json
	$(BIN)/python -m valuetier.quality.data_docs fetch
	touch $@

$(DAGSTER_HOME)/dagster.yaml: orchestration/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp orchestration/dagster.yaml $@

setup: $(VENV)/.installed $(MANIFEST) $(DAGSTER_HOME)/dagster.yaml $(DATA_DOCS_ASSETS)/.fetched

demo: setup
	@echo "== generating the demo bank: $(DEMO_CUSTOMERS) customers x $(DEMO_MONTHS) months (seed $(DEMO_SEED))"
	$(BIN)/valuetier generate --customers $(DEMO_CUSTOMERS) --months $(DEMO_MONTHS) --seed $(DEMO_SEED) --dirty-rate $(DEMO_DIRTY_RATE) \
		--out $(DEMO_DIR)/landing --truth $(DEMO_DIR)/ground_truth
	@echo "== running the monthly pipeline through Dagster for every month"
	$(DEMO_PII_KEY) VALUETIER_LANDING=$(DEMO_DIR)/landing $(BIN)/python -m orchestration.run

# Run the pipeline on your own landing folder: VALUETIER_LANDING=/path/to/landing make run
run: setup
	@test -n "$$VALUETIER_LANDING" || { echo "set VALUETIER_LANDING to a folder in the raw data contract"; exit 2; }
	$(BIN)/python -m orchestration.run

# The venv goes first on PATH: under `dagster dev`, dagster-dbt re-parses the project with `dbt` from PATH.
ui: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(if $(VALUETIER_LANDING),,$(DEMO_PII_KEY)) \
		VALUETIER_LANDING=$${VALUETIER_LANDING:-$(DEMO_DIR)/landing} \
		env --default-signal=INT,TERM $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

docs: setup
	cd dbt_project && ../$(BIN)/dbt docs generate --profiles-dir . && ../$(BIN)/dbt docs serve --profiles-dir . --host 127.0.0.1 --port 8080 --no-browser

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo --no-cache
	cd dbt_project && $(abspath $(BIN))/sqlfluff lint models macros --processes 2 --disable-progress-bar --nocolor

# One pytest worker per core (tests/conftest.py says how the tests are split between them).
TEST_WORKERS ?= 2
test: setup spark lint audit chromium
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope

# The edit-test loop: lint, then the tests that need no generated bank or pipeline run (those marked
# integration are left to `make test`), the dbt unit tests among them.
test-fast: setup spark lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope -m "not integration"

# The lock against a snapshot of pypa/advisory-database kept in security/ (valuetier/audit.py): no
# network needed. docs/security.md says how to read it and refresh the snapshot.
audit: $(VENV)/.installed
	$(BIN)/python -m valuetier.audit

# The report's browser test drives Debian's Chromium through Playwright (Playwright's own browser
# download is not reachable from a bank's network, nor from CI here).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The scale benchmark (bench/bench.py): make bench BENCH="--customers 1000000 --months 36 [--stage scoring]"
BENCH ?= --customers 100000 --months 36
bench: setup
	$(BIN)/python bench/bench.py $(BENCH)

clean:
	rm -rf data dbt_project/target dbt_project/logs .pytest_cache
