# The two commands of the README: `make demo` (run the benchmark) and `make test` (run the tests).
# Both create the virtual environment on first use; later calls reuse it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-all lint report install clean-results

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(BIN)/harness run --all

report: install
	$(BIN)/harness report

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not slow"

test-all: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

clean-results:
	rm -rf mlruns.db mlruns .harness reports/figures
