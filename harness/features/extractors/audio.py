"""Audio extractors."""

from __future__ import annotations

from harness.features.base import (
    ClipInput,
    Extractor,
    ExtractorConfigError,
    Features,
    package_identity,
    register_extractor,
)


@register_extractor
class OpenSmileExtractor(Extractor):
    """openSMILE eGeMAPS v02: 88 functionals as the pooled vector, the 25 low-level descriptors as the sequence.

    openSMILE ships its configurations inside the PyPI package, so this works offline.
    """

    name = "egemaps"
    output = "sequence [T, 25] (10 ms LLDs), pooled [88]"
    trained_on = ()
    modality = "audio"
    defaults = {"sample_rate": 16_000, "feature_set": "eGeMAPSv02"}
    description = "openSMILE eGeMAPS v02: 88 functionals (pooled), 25 LLDs per 10 ms frame (sequence)"

    def weights_identity(self) -> str:
        return package_identity("opensmile")

    def validate_options(self) -> None:
        """`feature_set` must name one of openSMILE's configurations (checked here, not in every worker)."""
        import opensmile

        names = list(opensmile.FeatureSet.__members__)
        if self.config["feature_set"] not in names:
            raise ExtractorConfigError(f"extractor {self.name!r}: feature_set {self.config['feature_set']!r} is "
                                       f"not an openSMILE feature set; choose from: {', '.join(names)}")

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
    defaults = {"sample_rate": 16_000, "feature_set": "ComParE_2016"}
    description = "openSMILE ComParE 2016: 6373 functionals (pooled), 65 LLDs (sequence)"

