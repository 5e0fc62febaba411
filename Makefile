# streamrec: `make demo` and `make test` do all the set-up they need on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install demo lint test test-unit test-integration bench reliability eval browser kafka-up kafka-down clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Debian's Chromium for the dashboard's browser test (installed when missing and we may use apt).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will be skipped"; \
	  else echo "note: chromium missing; the browser test will be skipped"; fi; }

demo: install
	$(BIN)/streamrec demo

# ruff (lint and import order) and mypy (strict, over stream_app, models and schemas), pinned in the test extra
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install browser lint
	$(BIN)/python -m pytest -m "not slow"

test-unit: install
	$(BIN)/python -m pytest tests/unit stream_app models schemas

test-integration: install
	$(BIN)/python -m pytest -m integration tests/integration

bench: install
	$(BIN)/streamrec bench --workers 2 --out docs/bench.json
	$(BIN)/streamrec bench --items 50000 --out docs/bench-1worker.json

reliability: install
	$(BIN)/python -m pytest -m reliability --reliability-full tests/integration

kafka-up: install
	$(BIN)/streamrec kafka up

kafka-down: install
	$(BIN)/streamrec kafka down

clean:
	-$(BIN)/streamrec kafka down
	rm -rf var .pytest_cache
