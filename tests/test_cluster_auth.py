"""Token authentication: the driver attaches to a cluster only with its token, and says in one line how to fix it.

Every multi-node test of the project runs its cluster with RAY_AUTH_MODE=token (tests/fixtures/local_cluster.py);
none may turn authentication off, which the last test checks over tests/, benchmarks/ and harness/.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

DRIVER = ("import sys; from harness.config import Settings; from harness.runtime import init_ray; import ray; "
          "init_ray(Settings(ray_address=sys.argv[1])); print('alive nodes', sum(n['Alive'] for n in ray.nodes()))")


def _env_without_token(monkeypatch, home: Path) -> None:
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))  # no ~/.ray/auth_token there


def test_a_driver_without_the_token_stops_with_one_line_naming_the_fix(monkeypatch, tmp_path):
    from harness.runtime import require_cluster_token

    _env_without_token(monkeypatch, tmp_path)
    with pytest.raises(SystemExit) as stop:
        require_cluster_token("10.0.0.5:6379")
    message = str(stop.value.code)
    assert "\n" not in message and message.startswith("harness: the Ray cluster at 10.0.0.5:6379 needs its")
    assert "set RAY_AUTH_TOKEN_PATH to the token file" in message and "docs/cluster.md" in message

    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match=r"RAY_AUTH_TOKEN_PATH=.*missing names no readable, non-empty file"):
        require_cluster_token("10.0.0.5:6379")


def test_a_driver_refuses_authentication_turned_off(monkeypatch, tmp_path):
    from harness.runtime import require_cluster_token

    _env_without_token(monkeypatch, tmp_path)
    (tmp_path / "token").write_text("abc")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "token"))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(SystemExit, match=r"^harness: RAY_AUTH_MODE=disabled is refused .* unset RAY_AUTH_MODE"):
        require_cluster_token("10.0.0.5:6379")


def test_token_sources_in_rays_order_and_never_the_token_itself(monkeypatch, tmp_path):
    from harness.runtime import token_source

    _env_without_token(monkeypatch, tmp_path)
    assert token_source() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret-default\n")
    assert token_source() == str(tmp_path / ".ray" / "auth_token")
    (tmp_path / "mounted").write_text("secret-mounted")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "mounted"))
    assert token_source() == str(tmp_path / "mounted")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret-env")
    assert token_source() == "RAY_AUTH_TOKEN"


def test_ray_address_local_starts_a_local_instance_and_needs_no_token(monkeypatch, tmp_path):
    """RAY_ADDRESS=local (benchmarks and tests use it to get a fresh instance) is not a cluster to authenticate to."""
    import ray

    from harness import runtime
    from harness.config import Settings

    _env_without_token(monkeypatch, tmp_path)
    calls = []

    class Started(Exception):
        pass

    def fake_init(**options):
        calls.append(options)
        raise Started

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    with pytest.raises(Started):
        runtime.init_ray(Settings(ray_address="local", workspace=tmp_path))
    assert calls[0]["address"] == "local"
    with pytest.raises(SystemExit, match="needs its authentication token"):  # a named cluster does need one
        runtime.init_ray(Settings(ray_address="10.0.0.5:6379", workspace=tmp_path))


@pytest.mark.slow  # a head and a worker raylet start (30-90 s on a small shared machine), and Ray retries 20 s
def test_a_token_cluster_forms_and_admits_only_drivers_with_its_token(tmp_path):
    """Head + worker with RAY_AUTH_MODE=token: the worker joins, the harness's driver connects with the token
    (mode set by the harness itself, not by the caller), and a wrong token ends in one line naming the fix."""
    import os

    from fixtures.local_cluster import local_cluster, new_token

    with local_cluster(workers=1, cpus_per_node=1) as cluster:
        assert cluster.env["RAY_AUTH_MODE"] == "token"
        env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # the harness turns it on itself
        ok = subprocess.run([sys.executable, "-c", DRIVER, cluster.address], env=env, capture_output=True,
                            text=True, timeout=180, cwd=REPO)
        assert ok.returncode == 0, ok.stderr[-3000:]
        assert "alive nodes 2" in ok.stdout  # the worker joined the token-authenticated head

        env["RAY_AUTH_TOKEN_PATH"] = str(new_token(tmp_path / "other"))
        refused = subprocess.run([sys.executable, "-c", DRIVER, cluster.address], env=env, capture_output=True,
                                 text=True, timeout=180, cwd=REPO)
        assert refused.returncode == 1
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith(f"harness: the Ray cluster at {cluster.address} refused this driver's token"), \
            refused.stderr[-3000:]
        assert "Traceback" not in refused.stderr
        assert open(env["RAY_AUTH_TOKEN_PATH"]).read() not in refused.stderr + refused.stdout  # never logged


def test_no_test_benchmark_or_harness_code_turns_ray_authentication_off():
    pattern = re.compile(r"RAY_AUTH_MODE[\"']?\s*[:=,]\s*[\"']?disabled")
    offenders = [f"{path.relative_to(REPO)}:{number}"
                 for folder in ("tests", "benchmarks", "harness")
                 for path in sorted((REPO / folder).rglob("*")) if path.suffix in {".py", ".sh", ".yaml", ".md"}
                 for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
                 if pattern.search(line) and path.name != Path(__file__).name]
    assert not offenders, offenders
