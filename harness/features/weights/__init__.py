"""Finding and identifying model weights offline, shared by the extractors, fine-tuning and the tests.

`hf`: transformers checkpoints by hub name (cached) or local path, layer selection and pooling; `timm_weights` and
`torchvision_weights`: image and video backbones; `random_init`: seeded random-init checkpoints in the real formats,
for tests and benchmarks that must not download. None of them registers an extractor.
"""
