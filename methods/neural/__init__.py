"""Neural fusion methods (IMA-Hadamard, cross-modal transformer + EmbraceNet, A-V cross-attention) and the
unimodal neural baselines, all trained by the one loop in `methods.neural.training`.

Importing a submodule registers its variants; the registry in `methods/__init__.py` imports them lazily.
"""
