# Every target sets itself up from a bare python3: .venv is created and the
# pinned dependencies installed when missing or when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck bench schemas clean test-docker deb test-deb

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/lxc-autoscale demo $(DEMO_ARGS)

# pytest-xdist workers: the suite mostly waits on real processes (brokers, services,
# simulated pct), so 4 workers keep 2 cores busy; PYTEST_WORKERS=0 runs it serially.
# loadgroup keeps the tests sharing a module fixture on one worker (tests/conftest.py).
PYTEST_WORKERS ?= 4

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

schemas: $(STAMP)
	$(BIN)/python -m shared.schemas docs/schemas

bench: $(STAMP)
	$(BIN)/python bench/collector_cycle.py
	$(BIN)/python bench/decider_throughput.py
	$(BIN)/python bench/actuator.py
	$(BIN)/python bench/actuator_failover.py
	$(BIN)/python bench/api_client.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/fleet.py

# The docker tier: a private Docker engine, the compose stack, deciders scaled 1->3->1.
test-docker: $(STAMP)
	bash scripts/docker-ci.sh

# The Debian package (build/deb/lxc-autoscale_<version>_amd64.deb), and its chroot tier.
deb: $(STAMP)
	bash scripts/build-deb.sh

test-deb: $(STAMP)
	bash scripts/deb-ci.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
