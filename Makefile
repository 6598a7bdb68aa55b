# The two README commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean ui

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	$(BIN)/recon demo

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

ui: install
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/.recon/dagster_home} $(BIN)/dagster dev -w workspace.yaml

bench: install
	$(BIN)/python -m pipelines.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .recon .pytest_cache
