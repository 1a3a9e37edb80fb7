"""The extractors: every module of this package is imported on the registry's first lookup, so adding an extractor
is adding a file here with a `@register_extractor` class (no list to edit; see docs/features.md, "Write an
extractor"). Modules whose name starts with "_" are skipped, for helpers that register nothing.

Kept apart from the engine (`harness.features.base`, `decode`, `runner`, `store`, `imports`, `commands`, `asr`) and
from the weight helpers (`harness.features.weights`): the engine never imports an extractor by name.
"""
