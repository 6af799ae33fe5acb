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

install: $(VENV)/.installed

run: install
	$(BIN)/murmur serve

demo: install
	$(BIN)/murmur demo

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
