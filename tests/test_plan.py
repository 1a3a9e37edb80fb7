"""`pipeline.plan`: every name, preset, protocol and extractor is resolved and checked before Ray starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.config import Settings
from harness.pipeline import PlanError, plan


def test_a_plan_resolves_presets_and_protocols() -> None:
    settings = Settings(preset="paper", protocols={"ravdess": "av-crossattention-10fold"})
    run_plan = plan(settings, methods=["av-xattn", "audio-svm"], datasets=["ravdess"])
    assert [m.name for m in run_plan.methods] == ["av-xattn@paper", "audio-svm"]  # no paper preset: unchanged
    assert run_plan.datasets[0].protocol.params == {"k": 10}  # the card's default is k=6


@pytest.mark.parametrize("settings, methods, datasets, fragment", [
    (Settings(), ["no-such-method"], None, "method: unknown method 'no-such-method'"),
    (Settings(), None, ["no-such-corpus"], "dataset: unknown dataset 'no-such-corpus'"),
    (Settings(protocols={"ravdess": "nope"}), None, ["ravdess"], "no protocol alternative 'nope'"),
    (Settings(preset="nope"), ["audio-svm"], None, "preset: no planned method has a preset 'nope'"),
    (Settings(extractor_config={"nope": {}}), None, ["emodb"], "'nope' is not an extractor"),
])
def test_mistakes_are_one_line_plan_errors(settings, methods, datasets, fragment) -> None:
    with pytest.raises(PlanError, match=fragment):
        plan(settings, methods=methods, datasets=datasets)


def test_planning_starts_no_ray() -> None:
    code = ("import sys; from harness.config import Settings; from harness.pipeline import plan; "
            "plan(Settings(), datasets=['emodb']); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
