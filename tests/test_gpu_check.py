"""benchmarks/gpu_check.sh in its CPU dry-run mode: every step of the GPU check runs (decode, wav2vec2 and WavLM
extraction on EmoDB clips, neural units at 0.25 and 1.0 of a logical GPU, one fold of `harness e2e`) and the one
table comes out with a row for each. The GPU figures themselves need a GPU machine (docs/cluster.md)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "data" / "emodb" / "wav"


@pytest.mark.slow  # Ray, two extractions, two small searches and a Ray Train run: 1-4 min on a small machine
@pytest.mark.skipif(not EMODB.is_dir(), reason=f"needs EmoDB at {EMODB} (../shared/data beside the repository)")
def test_gpu_check_dry_run_runs_every_step_and_prints_one_table(tmp_path):
    out = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out",
                          str(tmp_path / "table.md")], capture_output=True, text=True, timeout=960)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    rows = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("GPU_CHECK_ROWS "))
                      .removeprefix("GPU_CHECK_ROWS "))
    assert [r["step"] for r in rows] == ["decode only", "wav2vec2-base", "WavLM-base+", "neural unit, --gpus-per-trial "
                                         "0.25", "neural unit, --gpus-per-trial 1.0", "harness e2e, one fold"]
    assert all(r["seconds"] > 0 for r in rows)
    assert all(r["peak_mib"] is None for r in rows)  # no GPU in the dry run: no memory figure is made up
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n| ") == 1 + len(rows) and "dry run" in table


def test_gpu_check_without_a_gpu_says_how_to_run_it():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the real check would run")
    out = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("gpu_check: no CUDA device here;")
