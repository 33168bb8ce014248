# The two commands of the README:  `make demo`  and  `make test`.
VENV := .venv/bin
PACKAGES := schemas eventlog producers streams sinks brainstream

.PHONY: setup demo test lint typecheck schemas-check unit up down bench clean

setup:
	@scripts/setup.sh

demo: setup  ## set everything up and run the whole pipeline on synthetic traffic
	$(VENV)/brainstream demo

test: setup lint typecheck schemas-check  ## set everything up (real Kafka + Postgres) and run every test
	$(VENV)/python -m pytest

lint:
	$(VENV)/ruff check $(PACKAGES) tests benchmarks
	$(VENV)/ruff format --check $(PACKAGES) tests benchmarks

typecheck:
	$(VENV)/mypy

schemas-check:  ## the compatibility gate: published event schemas are still honoured
	$(VENV)/brainstream schemas check

unit: setup  ## tests that need no broker or database
	$(VENV)/python -m pytest -m "not integration"

up: setup
	$(VENV)/brainstream dev up

down:
	$(VENV)/brainstream dev down
	$(VENV)/brainstream dev down --dev-dir .brainstream/test

bench: setup
	for b in benchmarks/*.py; do $(VENV)/python $$b --quick || exit 1; done

clean: down
	rm -rf .brainstream .venv
