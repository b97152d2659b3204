# Luminide: `make run` starts everything on the embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
PYTEST_ARGS ?=

.PHONY: run test lint bench install install-dev system-deps worker clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(PY)
	@echo "Installing Python requirements into $(VENV) (first time: about 2 minutes; PyTorch CPU)..."
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	@echo "Installing Python requirements and test tools into $(VENV) (first time: a few minutes)..."
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(RUNTIME_STAMP) $@

install: $(RUNTIME_STAMP)
install-dev: $(DEV_STAMP)

system-deps:
	scripts/install-system-deps.sh

run: $(RUNTIME_STAMP)
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py bootstrap_demo
	$(PY) -m luminide.launcher

# A worker only (scale-out): REDIS_URL, DATABASE_URL and LUMINIDE_DATA_DIR must point at
# the shared services. A second worker on one host needs its own LUMINIDE_NODE_NAME: a
# worker that registers under a name fails the trials still running under it.
worker: $(RUNTIME_STAMP)
	$(VENV)/bin/celery -A luminide worker -Q gpu,default -c 1 -n '$(or $(LUMINIDE_NODE_NAME),celery@%h)' -l INFO

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(DEV_STAMP) system-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Figures and ratios against baselines measured in the same run (never timed tests).
bench: $(DEV_STAMP)
	$(PY) -m ranking bench
	$(PY) manage.py bench
	$(PY) -m sweeps.bench_sweep
	$(PY) -m sweeps.api.bench daphne 1
	$(PY) -m sweeps.api.bench daphne 2

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
