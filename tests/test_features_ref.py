"""ExtractorRef: an extractor passed as a value (frozen, picklable, equal by value) with build and cache key."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from harness.features.base import ExtractorConfigError, ExtractorRef, build_extractor


def test_ref_is_a_frozen_picklable_value_that_builds_and_keys():
    ref = ExtractorRef("logmel", {"n_mels": 20})
    assert pickle.loads(pickle.dumps(ref)) == ref
    assert ref == ExtractorRef("logmel", {"n_mels": 20}) and hash(ref) == hash(ExtractorRef("logmel", {"n_mels": 20}))
    assert ref != ExtractorRef("logmel") and str(ref) == "logmel(n_mels=20)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.name = "egemaps"  # type: ignore[misc]
    built = ref.build()
    assert built.name == "logmel" and built.config["n_mels"] == 20
    assert ref.cache_key("fp") == build_extractor("logmel", {"n_mels": 20}).cache_key("fp")
    assert ref.cache_key("fp") != ExtractorRef("logmel").cache_key("fp") != ExtractorRef("logmel").cache_key("fp2")


def test_ref_accepts_the_old_pair_and_flags_imports():
    assert ExtractorRef.of("logmel", {"n_mels": 20}) == ExtractorRef("logmel", {"n_mels": 20})
    ref = ExtractorRef("logmel")
    assert ExtractorRef.of(ref) is ref
    with pytest.raises(TypeError, match="inside the ExtractorRef"):
        ExtractorRef.of(ref, {"n_mels": 3})
    assert ExtractorRef("my-openface").is_imported and not ExtractorRef("logmel").is_imported
    with pytest.raises(ExtractorConfigError, match="unknown options"):
        ExtractorRef("logmel", {"n_melz": 3}).build()
    options = {"n_mels": 20}
    copy = ExtractorRef("logmel", options)
    options["n_mels"] = 40  # the ref keeps its own copy
    assert copy.options == {"n_mels": 20}
