# sla-stream developer commands. `make help` lists them.
SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# What is not Python (Java, Maven, promtool, ...): checked first, installed on Debian as root
# (deploy/system-deps says which target needs what).
deps-%:
	@PYTHON=$(PYTHON) deploy/system-deps $*

# The editable install's "be careful with folders named like your package" banner is setuptools
# talking to itself about this very layout: silenced, and nothing else.
$(STAMP): pyproject.toml
	@PYTHON=$(PYTHON) deploy/system-deps python
	@echo "sla-stream: installing into $(VENV) (pip, once; about 20 s)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv with sla-stream and its dev tools (checks Python 3.11+ first)

kafka: deps-run $(STAMP) ## fetch the Kafka broker jars from Maven Central into the cache (once)
	$(BIN)/python -m sla_stream.local_kafka fetch

run: deps-run install kafka ## the main job: local broker, worker, simulated traffic, alerts on screen
	$(BIN)/sla-stream demo

run-prometheus: deps-prometheus install kafka ## make run, plus a real Prometheus (Debian's package) on http://127.0.0.1:19090 scraping the worker with the project's rules
	$(BIN)/sla-stream demo --prometheus

test: deps-test install kafka ## every test: lint and types, engine unit tests, integration tests on a real broker (the kill -9 loop included)
	$(BIN)/ruff check sla_stream tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -rs tests
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

expedition: install ## the expedition example: a month of simulated parcels against examples/contracts/swiftparcel.yaml, its alerts and penalty statement
	@mkdir -p var
	$(BIN)/sla-stream simulate --contracts examples/contracts --rate 0 --call-rate 0 --request-rate 0 \
	  --item-rate 0.01 --late-share 0.04 --seed 1 --start 2026-11-01T00:00:00+01:00 --duration 31d --output var/shipments.jsonl
	$(BIN)/sla-stream replay --contracts examples/contracts --until 2026-12-02T00:00:00+01:00 \
	  --penalties var/shipment-statements.jsonl var/shipments.jsonl > var/shipment-alerts.jsonl
	@echo "alerts: var/shipment-alerts.jsonl ($$(wc -l < var/shipment-alerts.jsonl) lines); statements: var/shipment-statements.jsonl"
	$(BIN)/sla-stream report --statements var/shipment-statements.jsonl --contract swiftparcel-eu

crash-test: deps-run install kafka ## just the kill -9 loop, with its seed printed (SLA_STREAM_CRASH_SEED=N repeats a run)
	$(BIN)/python -m pytest -q -s tests/integration/test_crash_recovery.py

# The bench's own tools (the Quix Streams peer, py-spy) in an environment of their own: Quix pins
# pydantic and its Kafka client to versions sla-stream does not use.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: bench/requirements.txt
	@PYTHON=$(PYTHON) deploy/system-deps python
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt
	touch $@

bench: deps-run install kafka $(BENCH_VENV)/.installed ## the benchmark: plain consumer, Faust floors and a Quix Streams peer vs the worker (both guarantees) vs replay per source, latency, memory; report in bench/results/
	$(BIN)/python bench/run.py

bench-replay: install ## replay per source (tickets, calls, requests, items, the mix) against a parse-and-update floor, no broker; report in bench/results/replay.md (REPLAY_ARGS="--commit HEAD" measures a commit, not the work tree)
	$(BIN)/python bench/replay_mixes.py $(REPLAY_ARGS)

bench-requests: install ## replay speed on 10,000,000 request events; report in bench/results/
	$(BIN)/python bench/replay_requests.py

bench-reload: install ## a contract reload on a worker holding 1,000,000 open tickets: how long the event loop is held, against the code before; report in bench/results/reload.md
	$(BIN)/python bench/reload.py

unit: install ## the unit tests only (no broker)
	$(BIN)/python -m pytest -q tests/unit

audit: install ## dependency audit: pip-audit --strict over the resolved runtime and dev dependencies; fails NOT RUN where PyPI's advisories are unreachable
	$(BIN)/python -m sla_stream.dependency_audit $(AUDIT_ARGS)

lint: install ## ruff and mypy
	$(BIN)/ruff check sla_stream tests
	$(BIN)/mypy

docs: install ## serve the documentation site on http://127.0.0.1:8000 (it rebuilds as pages change)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

docs-build: install ## build the documentation site into site/ with --strict (a broken link fails it)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-gen: install ## rewrite the generated reference pages (command line, configuration, metrics, schemas) from the code
	$(BIN)/python -m sla_stream.reference_docs

broker: deps-run install kafka ## start a local broker in the background on 127.0.0.1:19092
	deploy/kafka/local-broker start

broker-stop: ## stop that broker
	deploy/kafka/local-broker stop

clean: ## remove local state (broker data, worker state); keeps .venv and the jar cache
	rm -rf var

.PHONY: help install kafka run run-prometheus test expedition crash-test bench bench-replay bench-requests bench-reload unit audit lint broker broker-stop clean docs docs-build docs-gen
