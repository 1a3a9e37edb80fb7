"""The command line: fast start, one-line errors listing valid choices (cluster.yaml: tests/test_cluster_config.py)."""

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
    (["run", "--method", "no-such-method"], "unknown method 'no-such-method'; choose from: audio-mlp, audio-svm"),
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


def _commands(parser=None, prefix=()):
    """Every leaf command of the CLI as (words, its parser)."""
    import argparse

    from harness.cli import build_parser

    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(prefix, parser)]
    return [leaf for name, child in subs[0].choices.items() for leaf in _commands(child, (*prefix, name))]


def test_flags_are_parsed_only_by_the_cli_package():
    """Flags are parsed in one place (no argparse parser outside harness/cli); nothing imports the CLI back (no
    hidden cycles through importlib)."""
    import ast

    offenders = []
    for path in [*(REPO / "harness").rglob("*.py"), *(REPO / "methods").rglob("*.py")]:
        if path.parent.name == "cli" and path.parent.parent.name == "harness":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            if any(m == "harness.cli" or m.startswith("harness.cli.") for m in modules):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
            # argparse outside the CLI only as data: wav2vec1 reads the argparse.Namespace fairseq pickled
            parses = any(word in path.read_text() for word in ("ArgumentParser", "add_argument", "parse_args"))
            if "argparse" in modules and parses:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_every_command_takes_the_same_settings_flags():
    shared = {"--config", "--data-root", "--data-dir", "--workspace", "--feature-store", "--extractor-config",
              "--tracking-uri", "--experiment"}
    leaves = _commands()
    assert {" ".join(words) for words, _ in leaves} >= {"run", "report", "list", "data list", "data scan",
                                                        "extract", "features import", "e2e"}
    for words, parser in leaves:
        flags = {flag for action in parser._actions for flag in action.option_strings}
        assert shared <= flags, f"harness {' '.join(words)} lacks {sorted(shared - flags)}"


def test_every_command_that_starts_ray_takes_the_same_cluster_flags():
    """run, extract, e2e and robustness start Ray (runtime.init_ray): each can join a cluster (`--address`) or
    size a local instance (`--num-cpus`), with the same spelling."""
    starts_ray = {"run", "extract", "e2e", "robustness"}
    for words, parser in _commands():
        flags = {flag for action in parser._actions for flag in action.option_strings}
        if " ".join(words) in starts_ray:
            assert {"--address", "--num-cpus"} <= flags, f"harness {' '.join(words)} lacks the cluster flags"


def test_help_texts_name_only_commands_that_exist():
    import re

    leaves = [words for words, _ in _commands()]
    grouped = {words[0] for words in leaves if len(words) > 1}  # data, features: the next word is a command too
    for words, parser in _commands():
        text = parser.format_help() + " ".join(a.help or "" for a in parser._actions)
        for mentioned in re.findall(r"`harness ([a-z0-9-]+(?: [a-z0-9-]+)?)", text):
            named = tuple(mentioned.split()[:2 if mentioned.split()[0] in grouped else 1])
            assert named in leaves, f"harness {' '.join(words)} --help mentions `harness {mentioned}`: no such command"


def test_run_flags_reach_the_search_settings():
    from harness.cli import build_parser, settings_from_args

    args = build_parser().parse_args([
        "run", "--all", "--scheduler", "asha", "--time-budget", "90", "--gpus-per-trial", "0.5", "--refit", "never",
        "--tune-storage", "s3://bucket/tune", "--preset", "paper", "--protocol", "ravdess=ten-fold",
        "--protocol", "crema-d=ten-fold", "--max-epochs", "2"])
    settings = settings_from_args(args)
    assert settings.max_epochs == 2
    assert (settings.scheduler, settings.time_budget_s, settings.gpus_per_trial) == ("asha", 90.0, 0.5)
    assert (settings.refit, settings.tune_storage, settings.preset) == ("never", "s3://bucket/tune", "paper")
    assert settings.protocols == {"ravdess": "ten-fold", "crema-d": "ten-fold"}


@pytest.mark.parametrize("argv, fragment", [
    (["run", "--all", "--gpus-per-trial", "0"], "gpus_per_trial must be in (0, 8]"),
    (["run", "--all", "--max-epochs", "0"], "max_epochs must be >= 1"),
    (["run", "--all", "--protocol", "ravdess"], "--protocol ravdess: say which dataset it is for"),
    (["run", "--all", "--protocol", "=x"], "--protocol expects NAME=VALUE"),
    (["run", "--all", "--protocol", "ravdess=nope"], "no protocol alternative 'nope'"),
    (["run", "--all", "--preset", "nope"], "no planned method has a preset 'nope'; offered: default, paper, sse-ft"),
    (["run", "--all", "--protocol", "nocorpus=x"], "unknown dataset 'nocorpus'"),
    (["data", "scan", "no-such-corpus"], "unknown dataset 'no-such-corpus'"),
    (["data", "list", "--data-dir", "/only/a/path"], "--data-dir expects DATASET=PATH"),
])
def test_usage_errors_share_one_path(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and err.startswith(f"harness {argv[0]}")


def test_data_commands_take_named_data_dirs_and_keep_the_old_spelling(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_ROOT", raising=False)
    assert main(["data", "list", "--data-dir", f"emodb={tmp_path / 'emo'}"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("emodb "))
    assert str(tmp_path / "emo") in line
    assert main(["data", "scan", "iemocap", "--data-dir", str(tmp_path / "iemo"), "--workspace",
                 str(tmp_path / "ws")]) == 1  # absent, but looked for where the old spelling said
    err = capsys.readouterr().err
    assert "--data-dir PATH is deprecated" in err and "--data-dir iemocap=PATH" in err
    assert str(tmp_path / "iemo") in err


def test_extract_reads_the_settings_file_and_keeps_the_old_option_spelling(tmp_path, capsys):
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"extractor_config:\n  wav2vec2: {{checkpoint: {tmp_path / 'from-file'}}}\n")
    assert main(["extract", "--dataset", "synthetic", "--extractor", "wav2vec2", "--config", str(settings),
                 "--workspace", str(tmp_path / "ws")]) == 2  # the file's checkpoint is checked before any work
    assert "from-file" in capsys.readouterr().err
    assert main(["extract", "--dataset", "synthetic", "--extractor", "wav2vec2", "--config", str(settings),
                 "--config", f"checkpoint={tmp_path / 'from-flag'}", "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "from-flag" in err and "--config [EXTRACTOR.]KEY=VALUE is deprecated" in err
    assert "--extractor-config EXTRACTOR.KEY=VALUE" in err


def test_a_settings_file_means_the_same_on_every_command(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_ROOT", raising=False)
    config = tmp_path / "settings.yaml"
    config.write_text(f"data_root: {tmp_path / 'corpora'}\ndata_dirs: {{emodb: {tmp_path / 'emo'}}}\n")
    assert main(["data", "list", "--config", str(config)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert str(tmp_path / "corpora" / "ravdess") in lines["ravdess"] and str(tmp_path / "emo") in lines["emodb"]
    assert main(["data", "list", "--config", str(config), "--data-dir", f"emodb={tmp_path / 'flag'}"]) == 0
    assert str(tmp_path / "flag") in capsys.readouterr().out  # a flag overrides the file
    config.write_text("data_rot: x\n")
    assert main(["data", "list", "--config", str(config)]) == 2
    assert "unknown setting(s) ['data_rot']" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "e2e"])
def test_a_card_subset_is_chosen_the_same_way_by_run_and_e2e(command):
    from harness.cli import build_parser, settings_from_args

    args = build_parser().parse_args([command, "--target", "ravdess=song", "--target", "crema-d=high-intensity"])
    assert settings_from_args(args).targets == {"ravdess": "song", "crema-d": "high-intensity"}


def test_a_bare_protocol_or_target_applies_to_the_named_datasets():
    """The issue's command: `harness run --preset paper --protocol av-crossattention-10fold --dataset ravdess`."""
    from harness.cli import build_parser, settings_from_args

    args = build_parser().parse_args(["run", "--dataset", "ravdess", "--dataset", "crema-d", "--protocol",
                                      "av-crossattention-10fold", "--target", "crema-d=high-intensity"])
    settings = settings_from_args(args)
    assert settings.protocols == {"ravdess": "av-crossattention-10fold", "crema-d": "av-crossattention-10fold"}
    assert settings.targets == {"crema-d": "high-intensity"}
    e2e = settings_from_args(build_parser().parse_args(["e2e", "--dataset", "ravdess", "--target", "song"]))
    assert e2e.targets == {"ravdess": "song"}
