"""cluster.yaml, Dockerfile and .dockerignore: what `ray up` would run, checked without a cloud.

`ray up` cannot be tried here (no AWS account), so the file is checked by Ray's own schema validation and by
assertions on what a run depends on: the two worker types and their resources against what the harness's units
request, one container image and no pip install at node start, the dashboard and MLflow bound to 127.0.0.1. The
commands cluster.yaml runs inside the container (the corpus copy from S3, the MLflow server start) are run here
for real, against the local moto S3 server and a local port. The Dockerfile must install what pyproject.toml pins
and the Makefile's --no-deps installs, version for version.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's python and mlflow, standing in for the image's


# -- helpers -----------------------------------------------------------------------------------------------------
def _cluster() -> dict[str, Any]:
    """cluster.yaml as Ray sees it: the file filled out with Ray's AWS defaults (what `ray up` runs)."""
    import yaml
    from ray.autoscaler._private.util import fillout_defaults

    return fillout_defaults(yaml.safe_load((REPO / "cluster.yaml").read_text()))


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins(requirements: list[str]) -> dict[str, str]:
    """name -> version for every `name==version` (extras dropped, names normalised as pip does)."""
    pins = {}
    for req in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;]+)", req.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return pins


def _logical_lines(text: str) -> list[str]:
    """Shell/Dockerfile/Makefile lines with backslash continuations joined and comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [line.strip() for line in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines() if line.strip()]


def _no_deps_installs(text: str) -> list[str]:
    """Every requirement installed by a `pip install --no-deps ...` command, in order."""
    found = []
    for line in _logical_lines(text):
        if "--no-deps" not in line:
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        commands: list[list[str]] = [[]]
        for token in lexer:
            commands.append([]) if token in {"&&", ";", "||", "|"} else commands[-1].append(token)
        for words in commands:
            if "install" in words and "--no-deps" in words and any(w.endswith("pip") for w in words):
                found += [w for w in words[words.index("install") + 1:] if not w.startswith("-") and w != "."]
    return found


def _all_commands(config: dict[str, Any]) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    commands = [c for key in keys for c in config.get(key, [])]
    for node_type in config["available_node_types"].values():
        commands += [c for key in keys for c in node_type.get(key, [])]
    return commands


# -- cluster.yaml ------------------------------------------------------------------------------------------------
def test_cluster_config_passes_ray_validation():
    from ray.autoscaler._private.docker import validate_docker_config
    from ray.autoscaler._private.util import validate_config

    config = _cluster()
    validate_config(config)
    validate_docker_config(config)


def test_a_cpu_head_cpu_workers_for_classical_units_and_gpu_workers_for_neural_units():
    from harness.config import Settings

    config = _cluster()
    types = config["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"} and config["head_node_type"] == "head"
    head, cpu, gpu = types["head"], types["cpu_worker"], types["gpu_worker"]
    assert head["resources"] == {"CPU": 0}  # coordinates, runs no trials, has no GPU
    assert "GPU" not in cpu["resources"] and cpu["resources"]["CPU"] >= 1
    assert gpu["node_config"]["InstanceType"] == "g5.xlarge" and gpu["resources"] == {"CPU": 4, "GPU": 1}
    # GPU workers from zero: the harness reads the GPU node type from the autoscaler's config (cluster_gpu_capacity)
    assert gpu["min_workers"] == 0 and cpu["min_workers"] == 0
    # What the harness's units request (harness/search.py) fits on the node type meant for them.
    neural = {"CPU": 1, "GPU": Settings().gpus_per_trial}
    assert all(gpu["resources"][k] >= v for k, v in neural.items())
    assert int(gpu["resources"]["GPU"] / neural["GPU"]) == 4  # 0.25 of an A10G each: 4 neural units per node
    assert cpu["resources"]["CPU"] >= 1  # a classical unit: {CPU: 1}
    assert config["max_workers"] >= cpu["max_workers"] + gpu["max_workers"]


def test_every_node_runs_the_image_and_only_gpu_workers_get_the_gpus():
    config = _cluster()
    docker = config["docker"]
    version = _pyproject()["project"]["version"]
    assert docker["head_image"] == docker["worker_image"] == f"YOUR_REGISTRY/mer-harness:{version}"
    assert docker["container_name"]
    assert not any("--gpus" in option for option in docker.get("run_options", []) + docker.get("head_run_options", []))
    types = config["available_node_types"]
    assert types["gpu_worker"]["docker"]["worker_run_options"] == ["--gpus all"]
    assert "docker" not in types["cpu_worker"] and "docker" not in types["head"]


def test_nothing_is_pip_installed_when_a_node_starts():
    """Ray's AWS defaults pip-install boto3 on the head unless head_setup_commands is set: the image has it."""
    commands = _all_commands(_cluster())
    assert commands and not [c for c in commands if re.search(r"\bpip3?\s+install\b", c)]
    assert _cluster()["file_mounts"] == {"~/ray-auth": "~/.mer-harness/ray-auth"}  # the token only; code: image


def test_every_node_and_driver_runs_with_token_authentication_from_a_mounted_file():
    """RAY_AUTH_MODE=token and the token's path in every container (ray start, the autoscaler, `ray exec` drivers);
    the token itself is a file from the user's machine, outside the repository, the image and the YAML."""
    config = _cluster()
    options = config["docker"]["run_options"]
    assert "--env RAY_AUTH_MODE=token" in options
    assert "--env RAY_AUTH_TOKEN_PATH=/home/ray/ray-auth/token" in options
    # the folder mounted at ~/ray-auth (the host's, then the container's home: /home/ray) holds the token file
    ((remote, local),) = config["file_mounts"].items()
    assert remote == "~/ray-auth" and local.startswith("~/") and not local.startswith("~/ray-auth")
    text = (REPO / "cluster.yaml").read_text()
    assert set(re.findall(r"RAY_AUTH_MODE=(\w+)", text)) == {"token"} and not re.search(r"RAY_AUTH_TOKEN=", text)
    assert not re.search(r"\b[0-9a-f]{64}\b", text)  # no token written into the file
    assert "ray-auth" not in (REPO / "Dockerfile").read_text()  # never baked into the image
    ignored = (REPO / ".dockerignore").read_text()
    assert ".mer-harness" not in ignored  # nothing to ignore: the token never lives in the repository


def test_dashboard_and_mlflow_listen_on_127_0_0_1_only():
    config = _cluster()
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    assert "0.0.0.0" not in (REPO / "cluster.yaml").read_text()
    (start,) = [c for c in config["head_start_ray_commands"] if "mlflow server" in c]
    mlflow = shlex.split(start.split("nohup", 1)[1].split(">", 1)[0])
    flags = dict(zip(mlflow[2::2], mlflow[3::2], strict=False))
    assert mlflow[:2] == ["mlflow", "server"]
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "5000"
    assert flags["--backend-store-uri"] == "sqlite:////home/ray/mlflow/mlruns.db"
    assert flags["--default-artifact-root"].startswith("s3://")
    # The sqlite file is on the head's disk: /home/ray/mlflow is a host folder mounted into the head's container.
    assert "-v /home/ubuntu/mlflow:/home/ray/mlflow" in config["docker"]["head_run_options"][0]
    assert "mkdir -p /home/ubuntu/mlflow" in config["available_node_types"]["head"]["initialization_commands"]
    # The server starts before Ray does, so a `ray start` failure does not leave the cluster without tracking.
    starts = config["head_start_ray_commands"]
    assert starts.index(next(c for c in starts if "mlflow server" in c)) < starts.index(
        next(c for c in starts if "ray start --head" in c))


def _localise(command: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in command, f"cluster.yaml's command no longer contains {old!r}; update this test"
        command = command.replace(old, new)
    return command


def test_the_corpus_copy_runs_against_s3(s3_root, tmp_path):
    """setup_commands' copy: nothing to copy is not an error; a corpus lands at the same relative paths."""
    from pyarrow import fs

    (command,) = _cluster()["setup_commands"]
    bucket = s3_root.removeprefix("s3://").split("/")[0]
    target = tmp_path / "data"
    local = _localise(command, {"s3://YOUR-BUCKET/corpora": f"s3://{bucket}/corpora", "/home/ray/data": str(target)})
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    subprocess.run(["bash", "-c", local], env=env, check=True, timeout=60)
    assert target.is_dir() and list(target.iterdir()) == []

    s3, _ = fs.FileSystem.from_uri(s3_root)
    with s3.open_output_stream(f"{bucket}/corpora/emodb/wav/03a01Fa.wav") as out:
        out.write(b"RIFF-not-really")
    subprocess.run(["bash", "-c", local], env=env, check=True, timeout=60)
    assert (target / "emodb" / "wav" / "03a01Fa.wav").read_bytes() == b"RIFF-not-really"


def _listening(port: int) -> list[str]:
    """Local addresses (IPv4, as dotted quads) with a TCP socket listening on `port`, from /proc/net/tcp."""
    addresses = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            addresses.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return addresses


@pytest.mark.slow  # MLflow's server takes 10-60 s to answer on a small, shared machine
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux's /proc/net/tcp")
def test_the_mlflow_start_command_serves_on_127_0_0_1_once(tmp_path):
    """The head's MLflow command, run as written (paths and port moved here): it serves, on 127.0.0.1 only, and a
    second `ray up` (the same command again) starts no second server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (command,) = [c for c in _cluster()["head_start_ray_commands"] if "mlflow server" in c]
    local = _localise(command, {"/home/ray/mlflow": str(tmp_path), "/tmp/mlflow-server.pid": str(tmp_path / "pid"),
                                "--port 5000": f"--port {port}"})
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    shell = subprocess.Popen(["bash", "-c", local], env=env, start_new_session=True)
    try:
        assert shell.wait(timeout=30) == 0  # backgrounded: the start command itself returns at once
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.read().strip() == b"OK"
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-2000:]
                time.sleep(1)
        assert set(_listening(port)) == {"127.0.0.1"}
        assert (tmp_path / "mlruns.db").exists()
        first = (tmp_path / "pid").read_text()
        assert subprocess.run(["bash", "-c", local], env=env, timeout=30).returncode == 0
        assert (tmp_path / "pid").read_text() == first  # the guard held: no second server
    finally:
        os.killpg(shell.pid, signal.SIGTERM)  # the session this test started: bash, mlflow and its workers


# -- Dockerfile and .dockerignore --------------------------------------------------------------------------------
def test_the_image_is_rays_for_the_pinned_ray_and_python():
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=rayproject/ray:([\d.]+)-py(\d)(\d+)-gpu$", dockerfile, re.M)
    assert base, "the Dockerfile's base is no longer rayproject/ray:<version>-py<XY>-gpu"
    pins = _pins(_pyproject()["project"]["dependencies"])
    assert base.group(1) == pins["ray"]
    assert f">={base.group(2)}.{base.group(3)}" in _pyproject()["project"]["requires-python"]
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M) and re.search(r"^USER ray$", dockerfile, re.M)


def _lock() -> dict[str, str]:
    """requirements.lock as name -> version (the file `make lock` writes)."""
    return _pins([line for line in (REPO / "requirements.lock").read_text().splitlines()
                  if not line.lstrip().startswith("#")])


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def test_the_image_installs_pyprojects_dependencies_at_the_locks_versions(tmp_path):
    dockerfile = (REPO / "Dockerfile").read_text()
    project = _pyproject()["project"]
    # The requirements step, run as written in a copy of the build context: pyproject's dependencies and the
    # cluster extra (boto3 for MLflow's S3 artifacts), nothing else, installed under the lock as constraints.
    (step,) = [line for line in _logical_lines(dockerfile) if "tomllib" in line]
    extract = shlex.split(step.removeprefix("RUN ").split(">", 1)[0])
    assert extract[:2] == ["python", "-c"]
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run([sys.executable, "-c", extract[2]], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == project["dependencies"] + project["optional-dependencies"]["cluster"]
    assert "pip install -c requirements.lock -r /tmp/requirements.txt" in step
    assert "COPY --chown=ray:users pyproject.toml requirements.lock ./" in dockerfile
    assert "boto3" in {_name(r) for r in project["optional-dependencies"]["cluster"]} and "boto3" in _lock()
    # No version is written into the Dockerfile's requirements step: they all come from the lock.
    assert not re.search(r"==", step)
    # The Makefile's --no-deps installs (outside the lock: their metadata conflicts with the stack) are the same
    # list in both files.
    makefile = (REPO / "Makefile").read_text()
    assert _no_deps_installs(dockerfile) == _no_deps_installs(makefile) != []
    # The project itself goes in after its dependencies and resolves nothing again.
    assert re.search(r"pip install --no-deps \.", dockerfile)
    assert dockerfile.index("COPY --chown=ray:users pyproject.toml") < dockerfile.index("COPY --chown=ray:users . ")


def test_make_install_installs_the_lock_and_nothing_else_resolves():
    lines = _logical_lines((REPO / "Makefile").read_text())
    recipe = lines[lines.index("$(VENV)/.installed: pyproject.toml $(LOCK)") + 1:]
    recipe = recipe[:next(i for i, line in enumerate(recipe) if not line.startswith(("$(", "command", "touch")))]
    installs = [line for line in recipe if "pip install" in line and "--upgrade pip" not in line]
    assert installs[0] == "$(BIN)/pip install --quiet -r $(LOCK)"
    assert all("--no-deps" in line for line in installs[1:]), installs  # nothing after the lock resolves
    assert "LOCK := requirements.lock" in lines
    assert "make test" in _logical_lines((REPO / ".ci" / "run").read_text())  # CI installs through the Makefile


def test_the_lock_covers_every_dependency_of_pyproject_and_its_extras():
    """A dependency added to pyproject.toml without `make lock` fails here (the lock would not install it)."""
    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    lock = _lock()
    wanted = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    missing, outside = [], []
    for requirement in map(Requirement, wanted):
        name = _name(str(requirement))
        if name not in lock:
            missing.append(name)
        elif not requirement.specifier.contains(lock[name], prereleases=True):
            outside.append(f"{name}: lock {lock[name]}, pyproject {requirement.specifier}")
    assert not missing and not outside, f"run `make lock`: not in the lock {missing}; lock outside pyproject {outside}"
    # one version per package, and the torch stack at pyproject's pins
    assert lock["torch"] == "2.11.0" and lock["ray"] == "2.60.0"


def test_the_installed_environment_is_the_lock():
    """What `make install` put into this venv: every locked package at the locked version. A venv made before the
    lock changed fails here: `make install` brings it to the lock."""
    from importlib.metadata import PackageNotFoundError, version

    drift = []
    for name, locked in _lock().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            drift.append(f"{name}: not installed (lock {locked})")
            continue
        if installed.split("+")[0] != locked.split("+")[0]:
            drift.append(f"{name}: installed {installed}, lock {locked}")
    assert not drift, "the venv is not the lock; run `make install`: " + "; ".join(drift)


def test_dockerignore_keeps_environments_results_and_corpora_out_but_the_cards_in():
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    for excluded in (".venv", ".harness", "mlruns.db", "reports/figures", "datasets/*"):
        assert excluded in lines
    assert lines.index("!datasets/*.yaml") > lines.index("datasets/*")  # harness/cards -> datasets/*.yaml ships


def _docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _docker_daemon(), reason="needs a running Docker daemon (`docker info` fails here)")
def test_the_build_context_is_what_dockerignore_says(tmp_path):
    """Docker's own reading of .dockerignore: the context it sends, listed from a scratch image of it."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /context/\n")
    tag = f"mer-harness-context-test:{os.getpid()}"
    subprocess.run(["docker", "build", "-q", "-f", str(tmp_path / "Dockerfile"), "-t", tag, str(REPO)],
                   check=True, capture_output=True, timeout=300)
    try:
        container = subprocess.run(["docker", "create", tag, "none"], check=True, capture_output=True,
                                   text=True).stdout.strip()
        listing = subprocess.run(f"docker export {container} | tar -t", shell=True, check=True,
                                 capture_output=True, text=True).stdout.splitlines()
        subprocess.run(["docker", "rm", container], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    files = {name.removeprefix("context/").rstrip("/") for name in listing if name.startswith("context/")}
    assert {"pyproject.toml", "Makefile", "harness/cli/__init__.py", "datasets/emodb.yaml"} <= files
    assert not [f for f in files if f.split("/")[0] in {".venv", ".harness", ".git", "build", "mlruns"}
                or f.startswith(("reports/figures", "mlruns.db")) or re.match(r"datasets/[^/]+/", f)]
