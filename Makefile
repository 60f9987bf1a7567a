# omniroute: `make run` starts the server on the embedded SQLite store; `make test` runs the suite.
# Everything is installed into .venv by this file; nothing needs to be installed by hand.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PROTOS := $(shell find protos -name '*.proto')
ARGS   ?=

.PHONY: run test gen lint bench clean check-gen

# The venv is rebuilt when pyproject.toml changes. gen.pth puts the generated protobuf
# modules (package `omniroute.*`, gitignored) on the venv's import path.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	echo "$(CURDIR)/gen" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/omniroute-gen.pth
	touch $@

# Stubs are generated in their own process at build time: grpc_tools and ortools must never
# be imported in one interpreter (DESIGN.md section 5).
gen/.stamp: $(VENV)/.installed $(PROTOS)
	rm -rf gen && mkdir -p gen
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iprotos --python_out=gen --grpc_python_out=gen \
	  --mypy_out=gen --mypy_grpc_out=gen $(PROTOS)
	find gen/omniroute -type d -exec touch {}/__init__.py \;
	touch $@

gen: gen/.stamp

run: gen/.stamp
	$(PY) -m server $(ARGS)

test: gen/.stamp
	$(PY) -m pytest $(ARGS)

BUF := npx --yes @bufbuild/buf@1.75.0

lint: gen/.stamp
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(VENV)/bin/ruff check server solver tests benchmarks
	$(VENV)/bin/ruff format --check server solver tests benchmarks
	$(VENV)/bin/mypy

# Every benchmark in turn (about 40 minutes; each script's --help has a --quick smoke run).
BENCHES := ledger_bench routing_bench postgres_bench solver_bench group_bench

bench: gen/.stamp
	for bench in $(BENCHES); do $(PY) benchmarks/$$bench.py $(ARGS) || exit 1; done

clean:
	rm -rf $(VENV) gen .pytest_cache .mypy_cache .ruff_cache .hypothesis
