#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): one table of extraction, neural-unit and e2e timings with peak GPU
# memory, written to benchmarks/gpu_check.md. Budget: 8 minutes on one GPU (the timeout below).
#   benchmarks/gpu_check.sh            on a machine with a CUDA GPU, ../shared/data beside the repository
#   benchmarks/gpu_check.sh --dry-run  anywhere: every step on CPU with tiny models (what CI runs; a small shared
#                                      CPU machine needs more than the GPU's 8 minutes for it)
set -euo pipefail
cd "$(dirname "$0")/.."
limit=480
[[ " $* " == *" --dry-run "* ]] && limit=900
exec timeout "$limit" .venv/bin/python benchmarks/gpu_check.py "$@"
