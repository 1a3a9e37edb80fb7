"""Shared fixtures: a small built-in synthetic corpus, the real data folder, one Ray session per module."""

from __future__ import annotations

from pathlib import Path

import pytest

# Fixtures shared by several modules: a local S3 server (moto) and a bucket per test.
pytest_plugins = ["fixtures.s3"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the repository in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """4 speakers x 4 emotions x 2 clips: enough for speaker-independent folds, fast to generate."""
    from harness.datasets.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("synthetic-small")
    generate(root, SyntheticConfig(n_speakers=4, clips_per_emotion=2))
    return root


@pytest.fixture
def one_torch_thread():
    """Torch on one intra-op thread for the test (small networks: threads cost more than they give), restored."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance per test module that asks for it (2 CPUs, like the reference machine)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
