"""Audio extractors."""

from __future__ import annotations

from typing import Literal

from harness.features.base import (
    ClipInput,
    Count,
    Extractor,
    ExtractorOptions,
    Features,
    OutputDims,
    package_identity,
    register_extractor,
)

# openSMILE's configurations (`opensmile.FeatureSet`; a test keeps this list equal to the installed package's)
FeatureSet = Literal["ComParE_2016", "GeMAPS", "GeMAPSv01a", "GeMAPSv01b", "eGeMAPS", "eGeMAPSv01a", "eGeMAPSv01b",
                     "eGeMAPSv02", "emobase", "IS09", "IS10", "IS11", "IS12", "IS13"]
# (LLDs, functionals) of the sets whose sizes the docs state; another set's are known after setup()
KNOWN_DIMS = {"eGeMAPSv02": (25, 88), "ComParE_2016": (65, 6373)}


@register_extractor
class OpenSmileExtractor(Extractor):
    """openSMILE eGeMAPS v02: 88 functionals as the pooled vector, the 25 low-level descriptors as the sequence.

    openSMILE ships its configurations inside the PyPI package, so this works offline.
    """

    name = "egemaps"
    output = "sequence [T, 25] (10 ms LLDs), pooled [88]"
    trained_on = ()
    modality = "audio"
    description = "openSMILE eGeMAPS v02: 88 functionals (pooled), 25 LLDs per 10 ms frame (sequence)"

    class Options(ExtractorOptions):
        sample_rate: Count = 16_000
        feature_set: FeatureSet = "eGeMAPSv02"

    def weights_identity(self) -> str:
        return package_identity("opensmile")

    def output_dims(self) -> OutputDims:
        if hasattr(self, "_lld"):
            return OutputDims(len(self._lld.feature_names), len(self._functionals.feature_names))
        return OutputDims(*KNOWN_DIMS.get(self.config["feature_set"], (None, None)))

    def setup(self) -> None:
        import opensmile

        feature_set = getattr(opensmile.FeatureSet, self.config["feature_set"])
        self._functionals = opensmile.Smile(feature_set, opensmile.FeatureLevel.Functionals)
        self._lld = opensmile.Smile(feature_set, opensmile.FeatureLevel.LowLevelDescriptors)

    def extract(self, clip: ClipInput) -> Features:
        assert clip.audio is not None
        pooled = self._functionals.process_signal(clip.audio, self.sample_rate).to_numpy()[0]
        sequence = self._lld.process_signal(clip.audio, self.sample_rate).to_numpy()
        return Features(sequence=sequence, pooled=pooled)


@register_extractor
class CompareExtractor(OpenSmileExtractor):
    """openSMILE ComParE 2016: 6,373 functionals (pooled) and 65 LLDs (sequence)."""

    name = "compare"
    output = "sequence [T, 65], pooled [6373]"
    trained_on = ()
    description = "openSMILE ComParE 2016: 6373 functionals (pooled), 65 LLDs (sequence)"

    class Options(OpenSmileExtractor.Options):
        feature_set: FeatureSet = "ComParE_2016"
