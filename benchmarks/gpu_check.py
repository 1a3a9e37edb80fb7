"""One GPU check of the code paths that only a GPU exercises, as one table (run through benchmarks/gpu_check.sh).

Rows, each with its wall time, its rate and the peak GPU memory while it ran (nvidia-smi, sampled every 0.2 s):
  decode only        EmoDB (../shared/data/emodb) decoded to 16 kHz mono by the harness's media loader: the rate a
                     GPU extractor would be fed at, at best
  wav2vec2-base      harness extraction (Ray, GPU encode actors, CPU decode tasks) of the same clips, clips/s and
                     real-time factor (compute seconds per second of audio)
  WavLM-base+        the same with the WavLM architecture
  neural unit 0.25   4 units of one neural method sharing one GPU (`--gpus-per-trial 0.25`): seconds per epoch
                     of one unit, and the wall time of the 4 (2 in the dry run)
  neural unit 1.0    the same units one GPU each (one at a time on one GPU)
  e2e one fold       `harness e2e` (Ray Train) on one fold of the built-in corpus at reduced size

No weights can be downloaded on the GPU machine either, so the speech encoders are randomly initialised with the
published base geometry (12 x 768; WavLM-base+ has wavlm-base's architecture): throughput does not depend on what
the weights learned. The neural units train on EmoDB-sized sequences of 768-d frames (random, seeded).

--dry-run runs every step on CPU with tiny models, a few clips and a logical GPU (what CI runs, through
tests/test_gpu_check.py): it checks the script, not the GPU. Its table is printed, not written to benchmarks/.

Usage: benchmarks/gpu_check.sh [--dry-run] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Sizes:
    """What one mode runs: the real check on a GPU, or the CPU dry run."""

    clips: int | None  # EmoDB clips (None: all 535)
    speech: str  # random_init size of the speech encoders
    units: int  # neural units per GPU-share setting
    epochs: int
    frames: int  # frames per clip of the neural units' sequences
    clips_per_unit: int
    e2e_backbone: str


REAL = Sizes(clips=None, speech="base", units=4, epochs=3, frames=150, clips_per_unit=535, e2e_backbone="resnet")
DRY = Sizes(clips=8, speech="tiny", units=2, epochs=1, frames=10, clips_per_unit=60, e2e_backbone="tiny")


class PeakGpuMemory:
    """Peak used memory of GPU 0 in MiB while the block runs, from nvidia-smi (covers Ray's worker processes too);
    None without nvidia-smi (the dry run)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.peak, self._stop = enabled and shutil.which("nvidia-smi") is not None, None, None

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i",
                                  "0"], capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                used = int(out.stdout.strip().splitlines()[0])
                self.peak = used if self.peak is None else max(self.peak, used)

    def __enter__(self) -> PeakGpuMemory:
        if self.enabled:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()


def emodb_manifest(clips: int | None):
    from dataclasses import replace

    from harness.datasets import get_dataset

    manifest = get_dataset("emodb").scan(SHARED_DATA / "emodb")
    if clips is not None:  # the first clips of each speaker, so the dry run still has every speaker
        table = manifest.table.groupby("speaker", group_keys=False).head(max(1, clips // 10)).head(clips)
        manifest = replace(manifest, table=table.reset_index(drop=True))
    return manifest


def audio_seconds(manifest) -> float:
    import soundfile

    return sum(soundfile.info(str(manifest.resolve(p))).duration for p in manifest.table["audio_path"])


def step_decode(manifest, gpu: bool) -> dict:
    from harness.media import load_audio

    with PeakGpuMemory(gpu) as memory:
        started = time.perf_counter()
        for path in manifest.table["audio_path"]:
            load_audio(manifest.resolve(path), 16_000)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "clips": len(manifest), "peak_mib": memory.peak}


def step_extract(manifest, model: str, size: str, workdir: Path, gpu: bool) -> dict:
    """Harness extraction on Ray: encode actors take one GPU each (one actor here), decode runs in CPU tasks."""
    from harness.features.runner import extract
    from harness.features.store import FeatureStore
    from harness.features.weights.random_init import speech_checkpoint

    checkpoint = speech_checkpoint(model, workdir / f"{model}-{size}", size=size)
    with PeakGpuMemory(gpu) as memory:
        started = time.perf_counter()
        result = extract(manifest, model, FeatureStore(str(workdir / f"store-{model}")),
                         {"checkpoint": str(checkpoint)}, verbose=False, concurrency=1, num_gpus=1, decode="tasks")
        seconds = time.perf_counter() - started
    assert result.n_failed == 0, f"{model}: {result.n_failed} clips failed"
    return {"seconds": seconds, "clips": len(manifest), "peak_mib": memory.peak}


def neural_data(clips: int, frames: int, seed: int = 0):
    """EmoDB-sized training data for a neural unit: 768-d frame sequences (wav2vec2-base's width), 10 speakers."""
    import numpy as np

    from methods import MultimodalData

    rng = np.random.default_rng(seed)
    classes = ["anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"]
    labels = np.arange(clips) % len(classes)
    centres = rng.normal(size=(len(classes), 768)).astype(np.float32)
    sequences = [(centres[label] + rng.normal(size=(frames, 768))).astype(np.float32) for label in labels]
    pooled = np.stack([s.mean(axis=0) for s in sequences])
    speakers = np.array([f"s{i % 10}" for i in range(clips)])
    return MultimodalData(ids=[f"c{i}" for i in range(clips)], classes=classes, pooled={"audio": pooled},
                          sequences={"audio": sequences}, labels=labels, groups={"speaker": speakers})


def step_neural(sizes: Sizes, share: float, workdir: Path, gpu: bool) -> dict:
    """`sizes.units` units of neural-audio (fixed epochs, no early stop) through the harness's search."""
    import numpy as np

    from harness.protocols import Fold
    from harness.search import Job, Search, SearchListener, SearchOptions, UnitStore, sample_configs
    from methods import get_method

    data = neural_data(sizes.clips_per_unit, sizes.frames)
    ids, speakers = np.array(data.ids), data.groups["speaker"]
    fold = Fold("f0", ids[~np.isin(speakers, ["s0", "s1"])].tolist(), ids[speakers == "s1"].tolist(),
                ids[speakers == "s0"].tolist())
    spec = get_method("neural-audio")
    configs = sample_configs(spec.search_space(), sizes.units, 0, "neural-audio", f"gpu-check-{share}")
    fixed = {**spec.fixed, "seed": 0, "max_epochs": sizes.epochs, "patience": sizes.epochs}
    job = Job("neural-audio", "gpu-check", fixed, configs, [fold], "uar", f"gpu-check-{share}", True, False,
              dict(zip(data.ids, speakers, strict=True)))
    store = workdir / f"units-{share}"
    with PeakGpuMemory(gpu) as memory:
        started = time.perf_counter()
        Search([job], {"gpu-check": data}, SearchOptions(str(store), scheduler="none", gpus_per_trial=share),
               SearchListener()).run()
        seconds = time.perf_counter() - started
    spans = [UnitStore(str(store)).load(job.unit_key(c, "f0"))["timing"] for c in range(len(configs))]
    per_epoch = float(np.mean([(s["end"] - s["start"]) / sizes.epochs for s in spans]))
    return {"seconds": seconds, "units": len(spans), "per_epoch": per_epoch, "peak_mib": memory.peak}


def step_e2e(sizes: Sizes, workdir: Path, gpu: bool) -> dict:
    """`harness e2e`, one fold of the built-in corpus, one epoch, one Ray Train worker (a GPU one when present)."""
    from harness.datasets.synthetic import SyntheticConfig, generate

    corpus = workdir / "synthetic"
    generate(corpus, SyntheticConfig(n_speakers=4, clips_per_emotion=2))
    args = [str(BIN / "harness"), "e2e", "--dataset", "synthetic", "--data-dir", f"synthetic={corpus}",
            "--fold", "0", "--epochs", "1", "--workers", "1", "--backbone", sizes.e2e_backbone,
            "--workspace", str(workdir / "e2e-ws"), "--tracking-uri", f"sqlite:///{workdir}/e2e-mlruns.db"]
    if not gpu:
        args.append("--cpu")
    env = {**os.environ, "RAY_ADDRESS": "local"}  # its own local Ray instance, not this script's
    with PeakGpuMemory(gpu) as memory:
        started = time.perf_counter()
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=420)
        seconds = time.perf_counter() - started
    assert out.returncode == 0, f"harness e2e failed (rc {out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}"
    return {"seconds": seconds, "peak_mib": memory.peak}


def table(rows: list[dict]) -> str:
    head = "| step | what ran | wall s | rate | real-time factor | peak GPU MiB |"
    lines = [head, "|" + "---|" * 6]
    for r in rows:
        peak = "-" if r["peak_mib"] is None else str(r["peak_mib"])
        lines.append(f"| {r['step']} | {r['what']} | {r['seconds']:.1f} | {r['rate']} | {r.get('rtf', '-')} | "
                     f"{peak} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny models, few clips: checks the script")
    parser.add_argument("--out", default=None, help="markdown file for the table (default: benchmarks/gpu_check.md, "
                                                    "none in a dry run)")
    args = parser.parse_args()
    sizes = DRY if args.dry_run else REAL

    import ray
    import torch

    gpu = torch.cuda.is_available() and not args.dry_run
    if not args.dry_run and not gpu:
        print("gpu_check: no CUDA device here; run it on a GPU machine, or pass --dry-run to check the script on CPU",
              file=sys.stderr)
        return 2
    if not (SHARED_DATA / "emodb" / "wav").is_dir():
        print(f"gpu_check: EmoDB is not at {SHARED_DATA / 'emodb'}; put ../shared/data beside the repository",
              file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    # One logical GPU in the dry run, so every GPU request is scheduled as on the real machine.
    ray.init(address="local", num_cpus=max(4, os.cpu_count() or 1), num_gpus=None if gpu else 1,
             include_dashboard=False, log_to_driver=False)
    started = time.perf_counter()
    rows = []
    try:
        manifest = emodb_manifest(sizes.clips)
        audio = audio_seconds(manifest)
        decode = step_decode(manifest, gpu)
        rows.append({"step": "decode only", "what": f"EmoDB, {decode['clips']} clips, {audio:.0f} s of audio",
                     "seconds": decode["seconds"], "rate": f"{decode['clips'] / decode['seconds']:.1f} clips/s",
                     "rtf": f"{decode['seconds'] / audio:.4f}", "peak_mib": decode["peak_mib"]})
        for model, label in (("wav2vec2", "wav2vec2-base"), ("wavlm", "WavLM-base+")):
            result = step_extract(manifest, model, sizes.speech, workdir, gpu)
            rows.append({"step": label, "what": f"extraction, random-init {sizes.speech} geometry, 1 GPU actor",
                         "seconds": result["seconds"], "rate": f"{result['clips'] / result['seconds']:.1f} clips/s",
                         "rtf": f"{result['seconds'] / audio:.4f}", "peak_mib": result["peak_mib"]})
        for share in (0.25, 1.0):
            result = step_neural(sizes, share, workdir, gpu)
            rows.append({"step": f"neural unit, --gpus-per-trial {share}",
                         "what": f"{result['units']} units of neural-audio, {sizes.epochs} epochs, "
                                 f"{sizes.clips_per_unit} clips x {sizes.frames} frames x 768",
                         "seconds": result["seconds"], "rate": f"{result['per_epoch']:.2f} s/epoch per unit",
                         "peak_mib": result["peak_mib"]})
        result = step_e2e(sizes, workdir, gpu)
        rows.append({"step": "harness e2e, one fold", "what": f"built-in corpus (32 clips), 1 epoch, "
                                                            f"{sizes.e2e_backbone} backbone, 1 worker",
                     "seconds": result["seconds"], "rate": "-", "peak_mib": result["peak_mib"]})
    finally:
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - started
    device = torch.cuda.get_device_name(0) if gpu else "CPU (dry run: tiny models, logical GPU)"
    text = "\n".join([f"# GPU check ({'dry run' if args.dry_run else 'GPU'})", "",
                      f"Device: {device}; torch {torch.__version__}; host {platform.node()}; "
                      f"total {total:.0f} s.", "", table(rows), ""])
    print(text, flush=True)
    print("GPU_CHECK_ROWS " + json.dumps([{k: v for k, v in r.items()} for r in rows]), flush=True)
    out = args.out or (None if args.dry_run else str(REPO / "benchmarks" / "gpu_check.md"))
    if out:
        Path(out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
