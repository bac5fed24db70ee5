# ParallelNER — two commands on a fresh machine:
#   make demo   create .venv, install, walk every user's path on the bundled samples (docs/demo.md)
#   make test   install everything the tests need (services included) and run every test

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# The install is redone whenever pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml 2>/dev/null | cut -d' ' -f1)

.PHONY: help install install-dev services demo test lint clean

help:  ## show the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(PIP) install --progress-bar off -e '.[local,dev,train]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)  ## install the project and all extras into .venv

services: install  ## install the services the tests start (Postgres, Label Studio, Chromium)
	bash scripts/install-services.sh

demo: install  ## every user's path on the bundled samples, local model (docs/demo.md)
	bash scripts/demo.sh

test: install services  ## install what the tests need and run the whole suite
	$(BIN)/python -m pytest

lint:  ## ruff check and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:  ## remove the virtualenv and local data
	rm -rf $(VENV) .parallelner .pytest_cache out/demo
