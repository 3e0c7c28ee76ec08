# The two commands a newcomer needs: `make run` (set up and run UDS) and `make test`.
# Both create the virtual environment themselves; only Python 3.11+ and a C compiler needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench schema clean web-assets

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# GraphiQL's browser files (React, GraphiQL), pinned, from the npm registry with `npm pack`
# (uds.web.vendor). Without npm they are skipped with a warning: GraphiQL then answers 503.
web-assets: $(STAMP)
	@$(BIN)/python -m uds.web.vendor || echo "make: continuing without GraphiQL's files (see above)"

run: $(STAMP) web-assets
	$(BIN)/uds up

test: $(STAMP) web-assets
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/graphql_read.py
	$(BIN)/python bench/policy_decisions.py
	$(BIN)/python bench/job_events.py
	$(BIN)/python bench/discovery.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/dashboards.py
	$(BIN)/python bench/mcp_bridge.py

schema: $(STAMP)
	$(BIN)/uds schema --write

clean:
	rm -rf $(VENV) .uds .pytest_cache .ruff_cache
