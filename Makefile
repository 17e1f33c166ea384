# The two commands a new machine needs: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(CURDIR)/$(VENV)/bin
# Example plugins start with `#!/usr/bin/env python3`: put the venv's python first.
export PATH := $(BIN):$(PATH)
DEBIAN_PACKAGES := golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev \
	golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev protobuf-compiler \
	protoc-gen-go protoc-gen-go-grpc postgresql curl \
	docker-registry skopeo umoci apache2-utils \
	buildah docker-compose mmdebstrap
DOCKER_OFFLINE := build/docker
DEMO_PLUGIN := file://$(CURDIR)/examples/plugins/header-enricher/plugin.py

.PHONY: install system-deps run test lint proto bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV) || { [ "$$(id -u)" = 0 ] && apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv && python3 -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Debian packages for the Go example plugin and `make proto`; installed when root and missing.
system-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
		else \
			echo "missing Debian packages: $$missing; run 'make test' as root or: sudo apt-get install $$missing" >&2; exit 1; \
		fi; \
	fi

run: install
	$(BIN)/solstice serve --plugin $(DEMO_PLUGIN)

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

# Two workers, whole files each: module fixtures stay shared, and the docs pages (fixed ports) stay
# on one worker. Most tests wait on processes, so two workers halve the time on two cores.
# Branch coverage of src/solstice in the test processes; the settings and the floor (fail_under) are in
# pyproject.toml's [tool.coverage.*], the data in .coverage (ignored).
test: install system-deps $(DOCKER_OFFLINE)/.prepared lint
	$(BIN)/pytest -n 2 --dist loadfile --cov --cov-report=term:skip-covered

# tests/deploy/test_docker.py builds the Dockerfile with no network: from a Debian base image and a
# wheelhouse of the installed versions, made here (the base once; `rm -r build/docker` refreshes it).
$(DOCKER_OFFLINE)/.prepared: $(VENV)/.installed deploy/docker/prepare-offline-build.sh | system-deps
	deploy/docker/prepare-offline-build.sh $(DOCKER_OFFLINE) $(PY)
	touch $@

proto: install
	$(PY) -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=src \
		src/solstice/protocol/plugin/v1/plugin.proto src/solstice/protocol/goplugin/goplugin.proto
	protoc -Isrc --go_out=go/src --go-grpc_out=go/src src/solstice/protocol/plugin/v1/plugin.proto

bench: install system-deps
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; } \
		|| { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
	$(PY) benchmarks/bench_hooks.py
	$(PY) benchmarks/bench_gateway.py
	$(PY) benchmarks/bench_oci.py
	$(PY) benchmarks/bench_endpoints.py
	$(PY) benchmarks/bench_capabilities.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .coverage .coverage.*
