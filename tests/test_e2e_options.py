"""`harness e2e` hands the engine typed options, not the argparse Namespace: `E2EOptions` holds every flag the
command defines beside the settings and cluster flags, and the command owns printing and the exit status."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from harness.cli import build_parser
from harness.cli.common import add_ray_flags, add_settings_flags
from harness.e2e.commands import E2EOptions


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {action.dest for action in parser._actions if action.dest != "help"}


def test_every_e2e_flag_is_an_option_or_a_shared_flag():
    shared = argparse.ArgumentParser()
    add_settings_flags(shared)
    add_ray_flags(shared)
    args = build_parser().parse_args(["e2e"])
    own = set(vars(args)) - _dests(shared) - {"command", "func", "verbose", "seed", "protocol", "targets"}
    assert own == {f.name for f in fields(E2EOptions)}
    assert E2EOptions(**{f.name: getattr(args, f.name) for f in fields(E2EOptions)}) == E2EOptions()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # as outside pytest: else SQLAlchemy's, from the MLflow
def test_a_dataset_without_audio_and_video_is_one_usage_line(capsys, tmp_path):  # store check, adds a pointer line
    from harness.cli import main

    where = ["--workspace", str(tmp_path / "ws"), "--tracking-uri", f"sqlite:///{tmp_path}/mlruns.db"]
    assert main(["e2e", "--dataset", "emodb", *where]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["harness e2e: error: emodb has no audio+video; the end-to-end mode needs both"]
