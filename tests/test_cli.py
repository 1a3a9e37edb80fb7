"""The command line: fast start, one-line errors listing valid choices, a valid cluster config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_help_does_not_import_the_heavy_stack():
    code = ("import sys; from harness.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'ray', 'mlflow', 'sklearn', 'transformers') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


@pytest.mark.parametrize("argv, fragment", [
    (["run", "--method", "no-such-method"], "unknown method 'no-such-method'; choose from: early-concat-svm"),
    (["run", "--dataset", "nope"], "unknown dataset 'nope'; choose from: crema-d, emodb, iemocap, meld"),
    (["run"], "give --all, or --method"),
    (["run", "--all", "--features", "audio"], "--features expects NAME=VALUE"),
])
def test_bad_names_get_one_line_errors(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_unknown_subcommand_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_list_shows_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for expected in ("early-concat-svm", "late-stack-xgboost", "text-mlp", "synthetic", "egemaps", "minilm",
                     "speaker-kfold"):
        assert expected in out


def test_report_without_runs_explains(tmp_path, capsys):
    assert main(["report", "--tracking-uri", f"sqlite:///{tmp_path}/empty.db", "--out", str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err


def test_cluster_config_passes_ray_validation():
    import yaml
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    validate_config(fillout_defaults(yaml.safe_load((REPO / "cluster.yaml").read_text())))
