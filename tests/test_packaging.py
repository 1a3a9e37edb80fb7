"""A non-editable install has everything a checkout has: the dataset cards ship in the wheel, corpora do not.

The cards live in the top-level `datasets/` folder and reach the package through the `harness/cards` symlink
(see `harness.datasets.cards`); these tests build the wheel and look inside it, then install it into a fresh
virtual environment and run `harness data list` from an unrelated folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CARDS = sorted(p.name for p in (REPO / "datasets").glob("*.yaml"))


def test_the_cards_link_points_at_the_datasets_folder():
    link = REPO / "harness" / "cards"
    assert link.is_symlink() and os.readlink(link) == "../datasets", "harness/cards must link to ../datasets"
    from harness.datasets.cards import shipped_card_dir

    assert shipped_card_dir() == (REPO / "datasets").resolve()  # errors name the file the user edits
    assert sorted(p.name for p in shipped_card_dir().glob("*.yaml")) == CARDS


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("wheel", reason="building a wheel needs the `wheel` package (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(REPO)], check=True, capture_output=True, text=True, timeout=300)
    (built,) = out.glob("mer_harness-*.whl")
    return built


def test_the_wheel_carries_every_card_and_no_corpus(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.removeprefix("harness/cards/") for n in names if n.startswith("harness/cards/"))
    folds = sorted(f"folds/{p.name}" for p in (REPO / "datasets" / "folds").glob("*.yaml"))
    # the top-level cards and the published fold files: nothing else from datasets/<name>/ (user corpora)
    assert shipped == sorted(CARDS + folds) and folds
    assert "harness/sota.yaml" in names
    assert "harness/cli/__init__.py" in names and "methods/registry.py" in names


def test_an_installed_wheel_lists_every_card(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    # The dependencies come from this environment's site-packages, added as a plain path: its .pth files (the
    # editable install of this checkout among them) are not processed, so `harness` resolves to the wheel.
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTHONPATH"))}
    located = subprocess.run([str(python), "-c", "import harness; print(harness.__file__)"], cwd=tmp_path,
                             env=env, check=True, capture_output=True, text=True).stdout
    assert located.startswith(str(site)), f"harness imported from {located}, not the installed wheel"
    listing = subprocess.run([str(venv / "bin" / "harness"), "data", "list"], cwd=tmp_path, env=env, check=True,
                             capture_output=True, text=True, timeout=300).stdout
    listed = {line.split()[0] for line in listing.splitlines()[1:]}
    assert {name.removesuffix(".yaml") for name in CARDS} <= listed
    emodb = next(line for line in listing.splitlines() if line.startswith("emodb "))
    assert " datasets/emodb " in emodb  # corpora are looked for under ./datasets/<name> of the working folder
