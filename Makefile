# omniroute: `make run` starts the server on the embedded SQLite store; `make test` runs the suite.
# Everything is installed into .venv by this file; nothing needs to be installed by hand.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PROTOS := $(shell find protos -name '*.proto')
RPC_PROTOS := $(wildcard third_party/googleapis/google/rpc/*.proto)
ARGS   ?=
BUF    := npx --yes @bufbuild/buf@1.75.0

.PHONY: run test gen check-gen lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# `make run` installs what serving needs; `make test` and the other targets add the dev extras.
# Either is redone when pyproject.toml changes.
$(VENV)/.serve: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.serve

run: $(VENV)/.serve
	$(VENV)/bin/omniroute serve $(ARGS)

test: $(VENV)/.dev
	$(PY) -m pytest $(ARGS)

# The generated stubs (package `omniroute.*`, under gen/) are committed so that `pip install .`
# needs no code generator; they ship with the .proto files, and the google/rpc protos that
# clients in other languages need to decode error details, as one include root. They are made
# in a process of their own: grpc_tools and ortools must never share an interpreter.
define generate
	rm -rf $(1)/omniroute && mkdir -p $(1)/omniroute/protos
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iprotos -Ithird_party/googleapis \
	  --python_out=$(1) --grpc_python_out=$(1) --mypy_out=$(1) --mypy_grpc_out=$(1) $(PROTOS)
	find $(1)/omniroute -path $(1)/omniroute/protos -prune -o -type d -exec touch {}/__init__.py \;
	touch $(1)/omniroute/py.typed
	cp -r protos/omniroute third_party/googleapis/google $(1)/omniroute/protos/
endef

gen: $(VENV)/.dev
	$(call generate,gen)

# Fails when a generated file is missing, stale or edited by hand.
check-gen: $(VENV)/.dev
	rm -rf .gen-check
	$(call generate,.gen-check)
	diff -r -x __pycache__ gen/omniroute .gen-check/omniroute || \
	  { echo "gen/ differs from the protos: run 'make gen' and commit it" >&2; rm -rf .gen-check; exit 1; }
	rm -rf .gen-check

# buf breaking compares with the previous commit on main, when there is one.
lint: $(VENV)/.dev check-gen
	$(BUF) lint
	$(BUF) format --diff --exit-code
	if git rev-parse --verify --quiet HEAD~1 >/dev/null; then \
	  $(BUF) breaking --against '.git#ref=HEAD~1'; fi
	$(VENV)/bin/ruff check server solver tests benchmarks
	$(VENV)/bin/ruff format --check server solver tests benchmarks
	$(VENV)/bin/mypy

# Every benchmark in turn (about 50 minutes; each script's --help has a --quick smoke run).
BENCHES := ledger_bench routing_bench postgres_bench solver_bench group_bench nearby_bench feed_bench import_bench

bench: $(VENV)/.dev
	for bench in $(BENCHES); do $(PY) benchmarks/$$bench.py $(ARGS) || exit 1; done

clean:
	rm -rf $(VENV) .gen-check .pytest_cache .mypy_cache .ruff_cache .hypothesis build
