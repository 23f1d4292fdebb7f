# Crowdpack: every set-up step a fresh machine needs lives here.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
SITE := $(VENV)/lib/python3.11/site-packages
PROTOS := $(shell find protos -name '*.proto')
ENGINE_SRC := $(shell find segment_engine/src segment_engine/python -type f -not -name "*.so" -not -path "*/__pycache__/*" -not -path "*/.mypy_cache/*" 2>/dev/null) segment_engine/Cargo.toml segment_engine/pyproject.toml

.PHONY: all setup run check check-engine proto-baseline test test-fast bench protos engine clean

all: setup

setup: $(VENV)/.deps gen/.stamp $(VENV)/.engine

# A virtualenv with every pinned dependency (pyproject.toml is the one place for pins).
$(VENV)/.deps: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	echo "$(CURDIR)/gen" > $(SITE)/crowdpack_gen.pth
	touch $@

# gRPC and event code generated from protos/ into gen/ (not committed).
protos: gen/.stamp
gen/.stamp: $(PROTOS) $(VENV)/.deps
	rm -rf gen && mkdir -p gen
	$(PY) -m grpc_tools.protoc -Iprotos -I$(SITE) --python_out=gen --pyi_out=gen --grpc_python_out=gen $(PROTOS)
	touch $@

# The Rust segment engine, built by maturin into the virtualenv.
engine: $(VENV)/.engine
$(VENV)/.engine: $(ENGINE_SRC) $(VENV)/.deps
	@command -v cargo >/dev/null || { echo "error: cargo not found (the Rust toolchain is required)"; exit 1; }
	cd segment_engine && VIRTUAL_ENV=$(CURDIR)/$(VENV) $(CURDIR)/$(BIN)/maturin develop --release --quiet
	touch $@

run: setup
	$(PY) -m services.cli run

# The protos' contract as an image buf reads (googleapis-common-protos supplies google/api offline).
API_IMAGE := gen/api.binpb
$(API_IMAGE): gen/.stamp
	$(PY) -m grpc_tools.protoc -Iprotos -I$(SITE) --include_imports --include_source_info --descriptor_set_out=$@ $(PROTOS)

# Static checks that keep the house in order: the import contracts (pyproject.toml, [tool.importlinter]);
# buf lint, and no breaking change against the released API (protos/released.binpb); the segment engine's checks;
# ruff (lint, import order) on the tree; mypy on services/ and gateway/ (with protoc's .pyi stubs in gen/).
check: setup $(API_IMAGE) check-engine
	$(BIN)/lint-imports
	$(BIN)/buf lint $(API_IMAGE) --config buf.yaml --path crowdpack
	$(BIN)/buf breaking $(API_IMAGE) --against protos/released.binpb --config buf.yaml --path crowdpack
	$(BIN)/ruff check .
	$(BIN)/mypy

# At a release: the current protos become the API later changes must not break (commit the file).
proto-baseline: $(API_IMAGE)
	cp $(API_IMAGE) protos/released.binpb

# The segment engine: the Rust property tests, clippy with warnings as errors, and the hand-written
# _core.pyi against the built module (mypy's stubtest; stub-only type names are in the allowlist).
check-engine: setup
	cd segment_engine && cargo test --quiet
	cd segment_engine && cargo clippy --quiet --all-targets -- -D warnings
	cd segment_engine/python && MYPY_CACHE_DIR=$(CURDIR)/.mypy_cache $(CURDIR)/$(PY) -m mypy.stubtest segment_engine._core \
		--allowlist ../stubtest-allowlist.txt

# make test: make check, then unit, integration and e2e tests, in parallel (pytest-xdist), a worker per core,
# then the console's browser tests. CI (CI=true, as .ci/run runs) adds the chaos tests;
# CROWDPACK_TEST_POSTGRES_URL adds the PostgreSQL twins.
# The browser tests run in a pytest of their own: Playwright's synchronous API leaves its event loop on the
# worker's thread, which no asyncio test after it could share. They share one running system.
TEST_WORKERS ?= auto
TEST_SELECT := $(if $(filter true,$(CI)),-m "not browser",-m "not chaos and not browser")

test: setup check
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(TEST_SELECT)
	$(PY) -m pytest -q -m browser tests/browser

# The unit tests alone: no server, no database (well under a minute).
test-fast: setup
	$(PY) -m pytest -q -m unit

bench: setup
	$(PY) -m tests.bench

clean:
	rm -rf gen $(VENV) var segment_engine/target
