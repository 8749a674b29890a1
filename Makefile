# Two entry points: `make demo` and `make test`. Each bootstraps what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck unit prometheus clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's Prometheus for the integration tests; installed only when missing and we are root.
prometheus:
	@if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's prometheus"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else \
	    echo "prometheus is missing and cannot be installed here (not root or no apt-get)"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check policyengine tests bench
	$(BIN)/ruff format --check policyengine tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) prometheus lint typecheck
	$(BIN)/python -m pytest -q

demo: $(STAMP) prometheus
	$(BIN)/policyengine demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
