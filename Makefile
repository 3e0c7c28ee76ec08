# The two commands a newcomer needs: `make run` (set up and run UDS) and `make test`.
# Both create the virtual environment themselves; only Python 3.11+ and a C compiler needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/uds up

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/graphql_read.py
	$(BIN)/python bench/policy_decisions.py
	$(BIN)/python bench/job_events.py
	$(BIN)/python bench/discovery.py

schema: $(STAMP)
	$(BIN)/uds schema --write

clean:
	rm -rf $(VENV) .uds .pytest_cache .ruff_cache
