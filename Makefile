# svcgen: two commands do everything on a fresh machine (see README.md).
#   make generate [DEST=../my-service] [ARGS="--framework flask"]  install svcgen, generate a service
#   make test                                                    install tools, run the whole suite
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEST ?= ./my-service
# The wizard when stdin is a terminal; `svcgen new` takes the defaults when it is not.
ARGS ?=

.PHONY: help install tools engine generate test lint bench

help:
	@sed -n 's/^#   //p' Makefile

$(BIN)/svcgen: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/svcgen

tools:
	scripts/install-tools.sh

# A real OCI engine (Podman from Debian 13) and stand-in base images, for the image tests.
engine:
	scripts/install-engine.sh

generate: install
	$(BIN)/svcgen new $(DEST) $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install tools engine lint
	PATH="$(CURDIR)/.tools/bin:$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)
