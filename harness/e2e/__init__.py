"""End-to-end mode of the A-V cross-attention method (Mocanu et al. 2023) on Ray Train.

Frozen pre-extracted features are the default for every method; this package adds the paper's end-to-end
setting: 3-D CNN (video) and 2-D CNN (spectrogram) backbones trained jointly with the attention and fusion
modules from decoded clips, data-parallel with Ray Train's `TorchTrainer` (DDP: one worker per GPU, or gloo
CPU workers), with a checkpoint per epoch and resume.

  clips.py     decode a corpus once into snippet tensors (frames per snippet, log-mel per segment), cached
  models.py    backbones (tiny ones for tests and CPU; torchvision r3d_18 / resnet18 with local weights)
  train.py     the per-worker training loop and `run_e2e`, which starts (or resumes) a TorchTrainer run
  commands.py  `harness e2e ...`
"""
