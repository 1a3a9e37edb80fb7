"""`pipeline.plan`: every name, preset, protocol and extractor is resolved and checked before Ray starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.config import Settings
from harness.pipeline import PlanError, RunOptions, plan


def test_a_plan_resolves_presets_and_protocols() -> None:
    random = {"weights": "random"}  # the paper's inputs' pretrained weights are not on the test machines
    settings = Settings(preset="paper", protocols={"ravdess": "av-crossattention-10fold"},
                        extractor_config={"spectrogram-snippets": random, "video-snippets": random})
    run_plan = plan(settings, RunOptions(methods=["av-xattn", "audio-svm"], datasets=["ravdess"]))
    assert [m.name for m in run_plan.methods] == ["av-xattn@paper", "audio-svm"]  # no paper preset: unchanged
    assert run_plan.settings.features == {"video": "video-snippets", "audio": "spectrogram-snippets"}  # its inputs
    assert run_plan.datasets[0].spec.protocol.params == {"k": 10}  # the card's default is k=6


@pytest.mark.parametrize("settings, methods, datasets, fragment", [
    (Settings(), ["no-such-method"], None, "method: unknown method 'no-such-method'"),
    (Settings(), None, ["no-such-corpus"], "dataset: unknown dataset 'no-such-corpus'"),
    (Settings(protocols={"ravdess": "nope"}), None, ["ravdess"], "no protocol alternative 'nope'"),
    (Settings(preset="nope"), ["audio-svm"], None, "preset: no planned method has a preset 'nope'"),
    (Settings(extractor_config={"nope": {}}), None, ["emodb"], "'nope' is not an extractor"),
])
def test_mistakes_are_one_line_plan_errors(settings, methods, datasets, fragment) -> None:
    with pytest.raises(PlanError, match=fragment):
        plan(settings, RunOptions(methods=methods, datasets=datasets))


def test_planning_starts_no_ray() -> None:
    code = ("import sys; from harness.config import Settings; from harness.pipeline import RunOptions, plan; "
            "plan(Settings(), RunOptions(datasets=['emodb'])); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_max_epochs_caps_every_neural_method_and_is_part_of_the_setting() -> None:
    """`--max-epochs` lowers a preset's epochs (CPU smoke runs) but never raises a method's own value, leaves
    classical methods alone, and makes a different evaluation setting, so a capped run never poses as a paper run."""
    from types import SimpleNamespace

    from harness.config import Settings, SettingsError
    from harness.datasets import get_dataset
    from harness.pipeline import method_fixed_params
    from harness.results import evaluation_setting
    from methods import get_method

    prepared = SimpleNamespace(spec=get_dataset("synthetic"), feature_keys={})
    capped = Settings(max_epochs=2)
    assert get_method("av-xattn@paper").fixed["max_epochs"] == 200
    assert method_fixed_params(get_method("av-xattn@paper"), prepared, capped)["max_epochs"] == 2
    assert method_fixed_params(get_method("xmt-embracenet"), prepared, capped)["max_epochs"] == 2
    assert method_fixed_params(get_method("av-xattn"), prepared, Settings(max_epochs=500))["max_epochs"] == 30
    assert "max_epochs" not in method_fixed_params(get_method("audio-svm"), prepared, capped)
    assert "max_epochs" not in method_fixed_params(get_method("av-xattn"), prepared, Settings())
    common = dict(evaluation_digest="d", protocol="p", features={}, trials=1, preset="paper", speaker_norm=False,
                  refit="auto")
    plain, plain_words = evaluation_setting(**common)
    cap, cap_words = evaluation_setting(**common, max_epochs=2)
    assert plain != cap and "max_epochs" not in plain and "capped at 2" in cap_words
    with pytest.raises(SettingsError, match="max_epochs"):
        Settings.from_env(max_epochs=0)


def test_a_target_subset_is_planned_and_its_results_carry_its_name(tmp_path) -> None:
    """`--target ravdess=song` scans the card's song subset; the job and the result are named `ravdess@song`,
    so a subset's results never mix with the full corpus's; an unknown target is one PlanError line."""
    import numpy as np
    import pandas as pd
    from fixtures.corpora import ravdess_tree

    from harness.corpus import open_corpus
    from harness.pipeline import plan_job
    from harness.prepare import PreparedDataset
    from methods import MultimodalData, get_method

    ravdess_tree(tmp_path / "rav", actors=range(1, 7), av=False)
    settings = Settings(data_dirs={"ravdess": tmp_path / "rav"}, workspace=tmp_path / "ws",
                        targets={"ravdess": "song"})
    (dataset,) = plan(settings, RunOptions(methods=["audio-svm"], datasets=["ravdess"])).datasets
    spec = dataset.spec
    assert dataset.present and set(dataset.extractors) == set(spec.features)
    assert spec.classes == ("neutral", "calm", "happy", "sad", "angry", "fearful")
    corpus = open_corpus(settings, spec, say=lambda line: None)
    assert corpus.manifest.dataset == "ravdess@song" and len(corpus.manifest) == 6 * 6
    data = MultimodalData(ids=corpus.manifest.ids, classes=list(spec.classes),
                          pooled={"audio": np.zeros((36, 2), np.float32)}, labels=np.zeros(36, int))
    prepared = PreparedDataset(spec, corpus.manifest, corpus.folds, data, {}, pd.DataFrame(), dataset.extractors)
    job, tags = plan_job(get_method("audio-svm"), prepared, settings)
    assert job.dataset == tags.dataset == "ravdess@song"
    with pytest.raises(PlanError, match="no target 'nope'"):
        plan(settings.with_(targets={"ravdess": "nope"}), RunOptions(methods=["audio-svm"], datasets=["ravdess"]))


def test_the_run_reads_the_plans_extractors_not_the_settings_again() -> None:
    """`DatasetPlan.extractors` is the one answer to "which extractor": what a method is fixed to (here the
    snippet layout av-xattn reads) comes from the prepared dataset's planned extractors, even when the settings
    handed in later name none."""
    from types import SimpleNamespace

    from harness.datasets import get_dataset
    from harness.pipeline import method_fixed_params
    from harness.prepare import extractor_refs
    from methods import get_method

    spec = get_dataset("synthetic")
    planned = Settings(features={"video": "video-snippets"},  # random weights: none to download on a test machine
                       extractor_config={"video-snippets": {"spatial_grid": 3, "snippets": 4, "weights": "random"}})
    prepared = SimpleNamespace(spec=spec, feature_keys={"video": "video-snippets:k"},
                               extractors=extractor_refs(spec, planned))
    fixed = method_fixed_params(get_method("av-xattn"), prepared, Settings())
    assert (fixed["n_snippets"], fixed["positions_per_snippet"]) == (4, 9)
    (dataset,) = plan(planned, RunOptions(methods=["av-xattn"], datasets=["synthetic"])).datasets
    assert dataset.extractors == prepared.extractors
