"""Settings from a YAML file, the environment and flags: precedence, merging and errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.config import Settings, SettingsError, parse_option


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_file_then_env_then_flags(tmp_path: Path, monkeypatch) -> None:
    config = write(tmp_path / "run.yaml", """
data_root: /corpora
trials: 8
speaker_norm: true
datasets: [emodb, crema-d]
features: {audio: wav2vec2}
extractor_config:
  wav2vec2: {checkpoint: /models/wav2vec2-base, layer: 6}
data_dirs: {emodb: /elsewhere/emodb}
""")
    monkeypatch.setenv("HARNESS_DATA_ROOT", "/from-env")
    monkeypatch.setenv("HARNESS_DATA_MELD", "/meld")
    settings = Settings.from_env(file=config, trials=2, features={"text": "bert"},
                                 extractor_config={"wav2vec2": {"layer": 9}})
    assert settings.data_root == Path("/from-env")  # env over file
    assert settings.trials == 2 and settings.speaker_norm  # flag over file; file over default
    assert settings.datasets == ("emodb", "crema-d")
    assert settings.features == {"audio": "wav2vec2", "text": "bert"}  # mappings merge key by key
    assert settings.data_dirs == {"emodb": Path("/elsewhere/emodb"), "meld": Path("/meld")}
    assert settings.extractor_config == {"wav2vec2": {"checkpoint": "/models/wav2vec2-base", "layer": 9}}


@pytest.mark.parametrize(("text", "message"), [
    ("trails: 3\n", r"unknown setting\(s\) \['trails'\]"),
    ("trials: many\n", "trials should be int"),
    ("speaker_norm: 1\n", "speaker_norm should be bool"),
    ("datasets: emodb\n", "datasets should be tuple"),
    ("features: {smell: x}\n", "unknown modality 'smell'"),
    ("- a list\n", "must hold a mapping"),
    ("trials: [\n", "not valid YAML"),
    ("time_budget_s: '60'\n", r"time_budget_s should be float \| None, got '60'"),
    ("gpus_per_trial: 9\n", r"gpus_per_trial must be in \(0, 8\], got 9"),
    ("data_dirs: {emodb: 3}\n", r"data_dirs should be dict\[str, Path\]"),
    ("trials: 2.0\n", "trials should be int, got 2.0"),
])
def test_bad_files_name_the_file_and_the_setting(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "bad.yaml", text)
    with pytest.raises(SettingsError, match=message) as error:
        Settings.from_env(file=config)
    assert "bad.yaml" in str(error.value) or "modality" in message


def test_option_values_parse_as_json_else_string() -> None:
    assert parse_option("wav2vec2.layer=6", "--x") == ("wav2vec2", "layer", 6)
    assert parse_option("minilm.transcript=asr", "--x") == ("minilm", "transcript", "asr")
    assert parse_option("layer=0.5", "--x") == ("", "layer", 0.5)
    with pytest.raises(SettingsError, match="KEY=VALUE"):
        parse_option("wav2vec2.layer", "--x")


def test_run_rejects_unknown_extractor_options_before_starting(tmp_path: Path, capsys) -> None:
    assert main(["run", "--dataset", "synthetic", "--extractor-config", "wav2vec2.layr=6"]) == 2
    assert "unknown options ['layr']" in capsys.readouterr().err
    assert main(["run", "--dataset", "synthetic", "--extractor-config", "wav2vec3.layer=6"]) == 2
    assert "wav2vec3" in capsys.readouterr().err
    config = write(tmp_path / "run.yaml", "trials: 2\n")
    assert main(["run", "--config", str(config)]) == 2  # nothing to run: no --all, no datasets/methods
    assert "methods/datasets in --config" in capsys.readouterr().err
    assert main(["run", "--all", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml does not exist" in capsys.readouterr().err
    # Missing weights are a one-line error before Ray starts, naming the download and the option to set.
    assert main(["run", "--dataset", "synthetic", "--extractor-config", "minilm.transcript=asr",
                 "--extractor-config", f"minilm.asr_checkpoint={tmp_path / 'no-whisper'}"]) == 2
    err = capsys.readouterr().err
    assert "no-whisper" in err and "--extractor-config EXTRACTOR.asr_checkpoint" in err and "Traceback" not in err


def test_the_example_settings_file_is_valid() -> None:
    from harness.features.base import build_extractor

    settings = Settings.from_env(file=Path(__file__).parents[1] / "settings.example.yaml")
    assert settings.datasets == ("synthetic",) and settings.methods
    for name, options in settings.extractor_config.items():
        build_extractor(name, options).check_weights()  # runs anywhere: no download needed


def test_yaml_values_become_typed_settings(tmp_path: Path) -> None:
    import dataclasses

    config = write(tmp_path / "typed.yaml", "time_budget_s: 60\nworkspace: /ws\nmethods: [audio-svm]\n"
                                            "num_cpus: null\n")
    settings = Settings.from_env(file=config)
    assert settings.time_budget_s == 60.0 and isinstance(settings.time_budget_s, float)
    assert settings.workspace == Path("/ws") and settings.methods == ("audio-svm",) and settings.num_cpus is None
    assert dataclasses.replace(settings, trials=3).trials == 3  # still a dataclass, validated on every change
    with pytest.raises(ValueError, match="trials must be >= 1"):
        settings.with_(trials=0)
    assert Settings.from_env(file=config).as_record()["workspace"] == "/ws"
