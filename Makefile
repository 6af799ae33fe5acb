# Two commands on a fresh machine (see README):
#   make run    install into .venv, then start the service (crawl -> score -> aggregate -> report)
#   make test   install into .venv, then run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install run demo test lint bench clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { echo "could not create a virtual environment: on Debian, apt-get install python3-venv"; exit 1; }

# torch is pinned and installed first: that release is a CPU build this machine has on disk; an
# unpinned torch would pull a CUDA build of several GB.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The dashboard's chart library, uPlot (MIT), from the npm registry at the version web/package-lock.json pins,
# copied into web/static/vendor/ where the server serves it: the page loads nothing from the network. Without
# npm the dashboard still shows its tables, and says how to get the charts.
VENDOR := web/static/vendor
$(VENDOR)/uPlot.iife.min.js: web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  { npm ci --prefix web --no-audit --no-fund --silent && mkdir -p $(VENDOR) && \
	    cp web/node_modules/uplot/dist/uPlot.iife.min.js web/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/; } || \
	  echo "npm ci failed (offline?): the dashboard will show tables without charts until make install succeeds"; \
	else echo "npm not found: the dashboard will show tables without charts (apt-get install npm, then make install)"; fi

install: $(VENV)/.installed $(VENDOR)/uPlot.iife.min.js

run: install
	$(BIN)/murmur serve

demo: install
	$(BIN)/murmur demo

# The HTML report test opens a report in headless Chromium, and the dashboard's browser tests drive it through
# chromium-driver (Debian's packages): installed here when missing and apt-get is usable as root; otherwise
# those tests skip and say why.
test: install
	@{ { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } && \
	   [ -x /usr/bin/chromedriver ]; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    printf 'installing chromium and chromium-driver (apt-get) for the browser tests... ' && \
	    { { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
	      >/dev/null 2>&1 && echo done || echo "failed: those tests will skip"; }; } || true
	$(BIN)/pytest -q

# mypy checks the installed layout (murmur.crawler, murmur.store, ...), which the repository's top-level
# folders only become once installed: a tree of links in .typecheck/ gives it that layout without copies.
TYPECHECK := .typecheck/murmur
lint: install
	$(BIN)/ruff check .
	@rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	@for f in murmur/*; do ln -s ../../$$f $(TYPECHECK)/; done
	@for d in config crawler sentiment scheduler store reports web; do ln -s ../../$$d $(TYPECHECK)/$$d; done
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml -p murmur

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
