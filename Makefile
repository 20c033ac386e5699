# Two commands on a fresh machine (Debian with Python 3 and git):
#   make demo   - create .venv, install stamp, run the whole loop on simulated devices
#   make test   - install stamp with its test extras (and, as root, the ARM toolchain and
#                 QEMU from Debian's packages; particle-api-js from npm into tests/node),
#                 then ruff, mypy --strict and pytest

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi qemu-system-arm \
                gcc cmake gdb-multiarch
PYTEST_ARGS ?=

NODE_DIR := tests/node

.PHONY: demo test lint typecheck pytest toolchain node bench clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing python3-venv"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && \
	    rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	  else \
	    echo "make: '$(PYTHON) -m venv' failed: install python3-venv (sudo apt-get install python3-venv)" >&2; exit 1; \
	  fi; }
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[sim,smp]'
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,smp]'
	@touch $(VENV)/.installed $@

# The ARM toolchain, QEMU, and the host gcc and cmake the integration tests build with:
# installed from Debian's packages when running as root and missing; otherwise the tests
# that need them fail loudly and say so.
toolchain:
	@missing=""; \
	for tool in arm-none-eabi-gcc arm-none-eabi-objcopy arm-none-eabi-readelf qemu-system-arm gcc cmake gdb-multiarch; do \
	  command -v $$tool >/dev/null || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing $(APT_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else \
	    echo "make: WARNING: missing$$missing; the tests that need them will FAIL (run as root to install $(APT_PACKAGES))" >&2; \
	  fi; \
	fi

# Particle's own JavaScript client (particle-api-js, pinned in tests/node/package-lock.json),
# which tests/sim/test_particle_api_js.py drives against the simulator. Without node and npm
# those tests fail and say so.
node: $(NODE_DIR)/node_modules/.installed

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null; then \
	  (cd $(NODE_DIR) && npm ci --no-audit --no-fund --silent) && touch $@; \
	else \
	  echo "make: WARNING: npm is missing; the particle-api-js tests will FAIL (install nodejs and npm)" >&2; \
	fi

demo: $(VENV)/.installed
	$(BIN)/stamp demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check stamp tests bench
	$(BIN)/ruff format --check stamp tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test toolchain node
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.installed-test toolchain
	$(BIN)/python bench/bench_header.py

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
