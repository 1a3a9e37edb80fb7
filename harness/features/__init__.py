"""Feature extraction: the engine (`base`: the extractor contract and registry; `decode`, `runner` on Ray Data,
`store`, `imports`, `commands`, `asr`), the extractors in `extractors/` (one file each, registered by being there)
and the weight helpers in `weights/`."""
