# The commands a person types. Everything runs on this machine: no Docker engine needed.
SHELL := /bin/bash
UV ?= uv
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help install dev test test-unit test-e2e lint fmt typecheck infra-up infra-down \
        infra-status migrate up up-observability down bench bench-orders bench-storm clean asyncapi docs \
        analytics-rebuild secrets rotate-keys dlq chaos chaos-smoke test-replicas test-ui screenshots

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install:  ## install what a fresh machine lacks (uv, nginx, Python packages, Kafka jars; helm if Go is there)
	@bash infra/local/install.sh
	@$(UV) sync --frozen --quiet

# REPLICAS=2: two processes of every service behind the gateway (SHOP_<NAME>_REPLICAS for one).
REPLICAS ?=
dev: install  ## run the whole shop locally, seeded, until Ctrl-C (REPLICAS=2: two of each service)
	@$(if $(REPLICAS),SHOP_REPLICAS=$(REPLICAS)) $(RUN) python scripts/dev.py

test: install  ## the whole default suite against real Kafka + PostgreSQL (starts them itself)
	@$(RUN) pytest -m "not bench and not chaos and not ui" $(PYTEST_ARGS)

test-unit: install  ## pure unit tests only (milliseconds, no infrastructure)
	@$(RUN) pytest $$(find libs services -type d -path '*/tests/unit') $(PYTEST_ARGS)

test-e2e: install  ## only the end-to-end tests through the gateway
	@$(RUN) pytest tests/e2e $(PYTEST_ARGS)

# Debian's Chromium, installed here when missing: only these tests need a browser.
test-ui: install  ## the ops console (/console/) in a real Chromium against the e2e stack
	@bash infra/local/install.sh chromium
	@$(RUN) pytest -m ui tests/ui $(PYTEST_ARGS)

screenshots: install  ## the console's pages as PNGs in docs/screenshots (shown in the README)
	@bash infra/local/install.sh chromium
	@SHOP_SCREENSHOTS=$(CURDIR)/docs/screenshots $(RUN) pytest -q -m ui tests/ui $(PYTEST_ARGS)

lint: install  ## ruff lint and format check over the whole repository (CI runs it)
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

fmt:  ## format and autofix
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

TYPECHECK_PATHS ?= libs/contracts/src libs/shopkit/src services/*/src scripts chaos bench tests
typecheck: install  ## mypy over the libraries, services, scripts, chaos, bench and tests/ (CI runs it)
	@$(RUN) mypy $(TYPECHECK_PATHS)

# Helm is built from its Go module by `make install` into .local/bin (docs/deployment.md).
.PHONY: chart
chart: install  ## lint the Helm chart, render it and validate every object (Kubernetes schemas)
	@$(RUN) pytest -q -p no:cacheprovider tests/deploy/test_chart.py $(PYTEST_ARGS)

infra-up: install  ## start PostgreSQL and Kafka locally and create the topics
	@bash infra/local/postgres.sh start
	@bash infra/local/kafka.sh start
	@$(RUN) python -m shopkit.kafka_admin

infra-down:  ## stop the gateway, Kafka and PostgreSQL
	-@bash infra/local/gateway.sh stop
	-@bash infra/local/kafka.sh stop
	-@bash infra/local/postgres.sh stop

infra-status:  ## what is running
	-@bash infra/local/postgres.sh status
	-@bash infra/local/kafka.sh status
	-@bash infra/local/gateway.sh status

migrate: infra-up  ## apply every service's migrations to the local databases
	@$(RUN) python scripts/migrate.py

docs: asyncapi  ## regenerate docs/generated (ERDs, classes, topic map, saga, OpenAPI), docs/errors.md, AsyncAPI
	@$(RUN) python scripts/docs.py
	@$(RUN) python scripts/openapi.py

asyncapi:  ## regenerate services/*/asyncapi.json from the code (commit the diff)
	@$(RUN) python scripts/asyncapi.py

ARGS ?= list
dlq:  ## dead letters through the gateway: make dlq ARGS="list --service order" (see docs/operations.md)
	@$(RUN) python -m shopkit.dlq $(ARGS)

ANALYTICS_DB ?= analytics
# ANALYTICS_DB as its own role (shop_<ANALYTICS_DB>), which postgres.sh creates with the database
PG_URL = $$(bash infra/local/postgres.sh url $(ANALYTICS_DB))

analytics-rebuild: infra-up  ## replay order and catalog events into ANALYTICS_DB (stop analytics first)
	@SHOP_PG_DATABASES=$(ANALYTICS_DB) bash infra/local/postgres.sh start
	@url=$(PG_URL) && cd services/analytics && SHOP_DATABASE_URL=$$url $(RUN) alembic upgrade head
	@SHOP_DATABASE_URL=$(PG_URL) $(RUN) python -m analytics.rebuild --truncate

secrets:  ## make the local keys and passwords if missing (.local/secrets/shop.env, mode 0600)
	@$(RUN) python -m shopkit.local_secrets

rotate-keys:  ## sign tokens with a new key from the next start; the current one still verifies
	@$(RUN) python -m shopkit.local_secrets rotate

COMPOSE := docker compose --env-file $${SHOP_LOCAL_DIR:-.local}/secrets/shop.env

up: secrets  ## the shop on Docker Compose: migration jobs, services healthy on /ready, gateway, demo seed
	$(COMPOSE) up -d --build

up-observability: secrets  ## `make up` plus Prometheus (:9090), Grafana (:3000) and Jaeger (:16686)
	$(COMPOSE) --profile observability up -d --build

down:  ## stop the Docker Compose stack
	$(COMPOSE) --profile observability down

bench: infra-up  ## every benchmark (slow; prints figures), see docs/performance.md
	@for b in catalog coupon storm analytics register; do echo "== bench/$${b}_bench.py"; \
	  $(RUN) python bench/$${b}_bench.py || exit 1; done
	@$(MAKE) --no-print-directory bench-orders

# The target's measurement: 70 clients, three runs of 3,000 orders after 20,000 warm-up orders
# (a freshly started stack, and a fresh Kafka most of all, needs minutes of load to be warm).
BENCH_ARGS ?= --sweep 70,70,70 --orders 3000 --warmup 20000

# The coupon flash sale with its 1,000 connections opened inside the burst: the gateway config
# from before the storm settings against today's, alternating rounds in one run, medians and
# their ratio (docs/performance.md "Connection storms"). STORM_ARGS="--rounds 5" for more.
STORM_ARGS ?=
bench-storm: infra-up  ## connection-storm benchmark: old vs new gateway config, interleaved
	@$(RUN) python bench/storm_bench.py --kafka 127.0.0.1:$${SHOP_KAFKA_PORT:-9092} \
	  --pg postgresql://$${SHOP_PG_USER:-postgres}:$${SHOP_PG_PASSWORD:-postgres}@127.0.0.1:$${SHOP_PG_PORT:-5432}/postgres \
	  $(STORM_ARGS)

# 50 users placing thousands of orders a minute from one address are what the abuse limits
# refuse: the stack a benchmark starts runs with SHOP_RATE_LIMITS=off (README "Abuse limits").
bench-orders: install  ## the order benchmark through the gateway of a local stack it starts and stops
	@mkdir -p .local; SHOP_RATE_LIMITS=off $(RUN) python scripts/dev.py > .local/bench-dev.log 2>&1 & dev=$$!; \
	  trap 'kill -INT $$dev; wait $$dev' EXIT; \
	  for i in $$(seq 240); do grep -q "The shop is running" .local/bench-dev.log && break; \
	    kill -0 $$dev 2>/dev/null || { tail -20 .local/bench-dev.log; exit 1; }; sleep 1; done; \
	  grep -q "The shop is running" .local/bench-dev.log || { echo "stack not up"; exit 1; }; \
	  $(RUN) python bench/order_bench.py $(BENCH_ARGS)

# The chaos suite runs its own PostgreSQL, Kafka and gateway (ports and directory below), never
# the ones `make dev` and `make test` use. See docs/chaos.md.
RUNS ?= 1
SEED ?= 1
SMOKE ?=
CHAOS_ENV = SHOP_LOCAL_DIR=$(CURDIR)/.local/chaos SHOP_PG_PORT=$${CHAOS_PG_PORT:-5532} \
  SHOP_KAFKA_PORT=$${CHAOS_KAFKA_PORT:-9192} SHOP_KAFKA_CONTROLLER_PORT=$${CHAOS_KAFKA_CONTROLLER_PORT:-9193}

chaos: install  ## faults under load, then an audit of the books (RUNS=20 SEED=7 SMOKE=1)
	@$(CHAOS_ENV) $(RUN) python -m chaos --runs $(RUNS) --seed $(SEED) $(if $(SMOKE),--smoke)

chaos-smoke: install  ## one short chaos run (<= 3 minutes), as CI runs it
	@$(CHAOS_ENV) $(RUN) python -m chaos --runs 1 --seed $(SEED) --smoke

# Two replicas of every service, one of each killed with -9 twice under load, then the chaos
# audit: on its own PostgreSQL, Kafka, gateway and directory (ports below), like the chaos suite.
REPLICAS_ENV = SHOP_LOCAL_DIR=$(CURDIR)/.local/replicas SHOP_PG_PORT=$${REPLICAS_PG_PORT:-5632} \
  SHOP_KAFKA_PORT=$${REPLICAS_KAFKA_PORT:-9292} \
  SHOP_KAFKA_CONTROLLER_PORT=$${REPLICAS_KAFKA_CONTROLLER_PORT:-9293}

test-replicas: install  ## two replicas of everything, one of each killed mid-run, books audited (<= 4 min)
	@$(REPLICAS_ENV) $(RUN) python -m chaos --runs 1 --seed $(SEED) --scenario replicas --replicas 2

clean:  ## stop local infrastructure and remove its data and caches
	-@$(MAKE) --no-print-directory infra-down
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
