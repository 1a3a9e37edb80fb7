"""Extraction throughput at the sample rates corpora come in: the harness vs a plain openSMILE loop.

For each input rate (8, 16, 22.05, 24.414, 44.1 and 48 kHz) it writes the same EmoDB clips (../shared/data/emodb,
16 kHz, resampled once to that rate with soxr VHQ and stored as 16-bit WAV) and measures on those files:
  plain       a single-process loop: `opensmile.Smile(eGeMAPSv02).process_file(path)` for the functionals and
              the low-level descriptors, i.e. the two things the harness's `egemaps` extractor stores, at the
              file's own rate (openSMILE needs no resampling)
  plain-func  the same loop for the functionals only (what a quick script would do)
  harness-1   `harness.features.runner.extract(manifest, "egemaps", ...)` through Ray with one encode actor
              (decode + resample to 16 kHz + both openSMILE passes + store writes; actor start-up included)
  harness-local  the same with `executor="local"` (a loop in this process, no Ray): the harness's own cost
              per clip without Ray's pipeline start-up
and the time of one resampling call to 16 kHz, soxr (now) against torchaudio.functional.resample (before).
The issue's target: harness-1 >= 0.5x plain at every rate (per worker: Ray gets one actor here, so the other of
the machine's 2 cores serves the driver and Ray's own processes).

Usage: .venv/bin/python benchmarks/resample.py [--clips 60] [--out benchmarks/resample.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "data" / "emodb" / "wav"
RATES = (8_000, 16_000, 22_050, 24_414, 44_100, 48_000)


def write_corpus(folder: Path, sources: list[Path], rate: int):
    """The clips at `rate` under `folder`, and a manifest naming them."""
    import soundfile as sf
    import soxr

    from harness.manifest import Manifest

    rows = []
    for source in sources:
        audio, native = sf.read(str(source), dtype="float32")
        if native != rate:
            audio = soxr.resample(audio, native, rate, quality="VHQ")
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / source.name), audio, rate, subtype="PCM_16")
        rows.append({"clip_id": source.stem, "label": "x", "speaker": source.stem[:2],
                     "audio_path": source.name})
    return Manifest(f"rate{rate}", folder, ["x"], pd.DataFrame(rows))


def plain_loop(paths: list[Path], functionals_only: bool) -> float:
    """Seconds for a plain openSMILE loop over the files (set-up excluded, as a script's would be amortised)."""
    import opensmile

    functionals = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    lld = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.LowLevelDescriptors)
    started = time.perf_counter()
    for path in paths:
        functionals.process_file(str(path))
        if not functionals_only:
            lld.process_file(str(path))
    return time.perf_counter() - started


def harness_run(manifest, store_root: Path, **options) -> tuple[float, int]:
    from harness.features.runner import extract
    from harness.features.store import FeatureStore

    started = time.perf_counter()
    result = extract(manifest, "egemaps", FeatureStore(str(store_root)), verbose=False, **options)
    return time.perf_counter() - started, len(result.stored.failures)


def resample_ms(path: Path) -> tuple[float, float]:
    """One resampling call of this file to 16 kHz: soxr (harness.media) and torchaudio, in milliseconds."""
    import soundfile as sf
    import torch
    import torchaudio.functional

    from harness.media import resample

    audio, rate = sf.read(str(path), dtype="float32")
    times = []
    for call in (lambda: resample(audio, rate, 16_000),
                 lambda: torchaudio.functional.resample(torch.from_numpy(audio), rate, 16_000)):
        call()  # warm (torchaudio caches nothing across calls, soxr nothing either; imports excluded)
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "resample.md")
    args = parser.parse_args()
    if not EMODB.is_dir():
        raise SystemExit(f"EmoDB not found at {EMODB}")
    import ray
    import torch

    torch.set_num_threads(1)
    sources = sorted(EMODB.glob("*.wav"))[:: max(1, 535 // args.clips)][: args.clips]
    rows, loads = [], [" ".join(f"{x:.2f}" for x in os.getloadavg())]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="resample-bench-") as tmp:
            for rate in RATES:
                manifest = write_corpus(Path(tmp) / f"r{rate}", sources, rate)
                paths = [manifest.resolve(p) for p in manifest.table["audio_path"]]
                seconds = manifest.table["audio_path"].map(
                    lambda p, m=manifest: __import__("soundfile").info(str(m.resolve(p))).duration).sum()
                plain = plain_loop(paths, functionals_only=False)
                plain_func = plain_loop(paths, functionals_only=True)
                harness, failed = harness_run(manifest, Path(tmp) / f"store{rate}", concurrency=1)
                local, _ = harness_run(manifest, Path(tmp) / f"local{rate}", executor="local")
                soxr_ms, torchaudio_ms = resample_ms(paths[0])
                n = len(paths)
                rows.append({"input rate Hz": rate, "clips": n, "audio s": round(seconds, 1),
                             "plain clips/s": round(n / plain, 1), "plain-func clips/s": round(n / plain_func, 1),
                             "harness-1 clips/s": round(n / harness, 1),
                             "harness-local clips/s": round(n / local, 1),
                             "harness-1 / plain": f"{plain / harness:.2f}x",
                             "harness-1 / plain-func": f"{plain_func / harness:.2f}x",
                             "harness-local / plain": f"{plain / local:.2f}x", "failed": failed,
                             "resample ms soxr": round(soxr_ms, 2), "resample ms torchaudio": round(torchaudio_ms, 1)})
                loads.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
                print(rows[-1], flush=True)
    finally:
        ray.shutdown()
    write_report(args.out, pd.DataFrame(rows), loads, sources[0].name)


def write_report(path: Path, table: pd.DataFrame, loads: list[str], first: str) -> None:
    ratios = table["harness-1 / plain"].str.rstrip("x").astype(float)
    lines = [
        "# Resampling and extraction throughput by input sample rate",
        "",
        "Command: `.venv/bin/python benchmarks/resample.py` (from the repository root); this file is its output.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, no GPU, "
        "shared with other jobs. Load average (1/5/15 min) before and after each rate: " + " -> ".join(loads),
        "(2 would be this benchmark alone; higher values mean other jobs shared the 2 cores, and every figure",
        "below is then a lower bound that varies from run to run).",
        "",
        "Clips: every ~9th EmoDB file (16 kHz originals), written at each rate with soxr VHQ as 16-bit WAV.",
        "plain = a single-process `opensmile` loop over the files (functionals + low-level descriptors, what the",
        "`egemaps` extractor stores); plain-func = functionals only; harness-1 = `extract(..., concurrency=1)`",
        "through Ray with one encode actor (decode, resampling to 16 kHz, both openSMILE passes, store writes,",
        "actor start-up included); harness-local = the same extraction as a loop in this process (no Ray). "
        "The resampling columns time one call on "
        f"`{first}` at that rate (soxr now, torchaudio.functional.resample before).",
        "",
        "| " + " | ".join(table.columns) + " |",
        "|" + "---|" * len(table.columns),
    ]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    lines += ["", f"Target (issue 21): harness-1 >= 0.5x plain at every rate: "
                  f"{'met' if (ratios >= 0.5).all() else 'NOT met'} (lowest {ratios.min():.2f}x)."]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
