"""MER harness: benchmark multimodal emotion recognition fusion methods under one protocol."""

__version__ = "0.1.0"
