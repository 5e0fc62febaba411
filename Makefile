# streamrec: `make demo` and `make test` do all the set-up they need on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# Helm for the chart's tests: built once from the Go module proxy, cached between runs
HELM_VERSION := v4.3.2
HELM_DIR     := $(HOME)/.cache/streamrec/helm/$(HELM_VERSION)

.PHONY: install demo lint test test-unit test-integration bench reliability eval browser prometheus helm kafka-up kafka-down clean

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

# Debian's Prometheus for the scrape test (installed when missing and we may use apt; the package
# lists are refreshed only when no refresh happened in the last hour, e.g. by `browser` just before).
APT_FRESH = find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | grep -q .
prometheus:
	@command -v prometheus >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    ( { $(APT_FRESH) || apt-get update -qq; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
	      || echo "warning: could not install prometheus; the Prometheus test will be skipped"; \
	  else echo "note: prometheus missing; the Prometheus test will be skipped"; fi; }

# Helm, built from source with the machine's Go (a cold build takes minutes; later runs reuse it).
helm:
	@test -x $(HELM_DIR)/helm || { \
	  if command -v go >/dev/null; then \
	    echo "building helm $(HELM_VERSION) into $(HELM_DIR) (once)"; \
	    GOBIN=$(HELM_DIR) GOFLAGS=-buildvcs=false nice go install -trimpath -ldflags='-s -w' helm.sh/helm/v4/cmd/helm@$(HELM_VERSION) \
	      || echo "warning: could not build helm; the chart tests will be skipped"; \
	  else echo "note: go missing, helm not built; the chart tests will be skipped"; fi; }

demo: install
	$(BIN)/streamrec demo

# ruff (lint and import order) and mypy (strict, over stream_app, models and schemas), pinned in the test extra
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install browser prometheus helm lint
	$(BIN)/python -m pytest -m "not slow" --durations=25

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
