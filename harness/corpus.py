"""Opening a corpus: find it (generating the built-in one on first use), scan it into a manifest, store the
manifest, and load or make its folds. One path for `harness run`, `extract`, `e2e` and `data scan`, so they agree
on where a corpus is, what a missing one says, and which folds it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config import Settings
from harness.datasets import DatasetSpec
from harness.manifest import Manifest
from harness.protocols import Fold, load_or_make_folds


class CorpusNotFound(FileNotFoundError):
    """The corpus is not where the settings say; the message names the place and how to point elsewhere."""


@dataclass(frozen=True)
class Corpus:
    spec: DatasetSpec
    root: Path
    manifest: Manifest
    folds: list[Fold]


def how_to_obtain(spec: DatasetSpec) -> str:
    if any(a.get("url") for a in spec.obtain.get("archives", [])):
        return f"harness data fetch {spec.name}"
    if spec.builtin:
        return f"harness data scan {spec.name} (generated)"
    return f"by hand: {spec.homepage or spec.source}"


def locate(settings: Settings, spec: DatasetSpec, say=print) -> Path:
    """The corpus's folder; the built-in corpus is generated there on first use."""
    root = settings.data_dir(spec.name)
    if spec.is_present(root):
        return root
    if spec.prepare is not None:
        say(f"[data] {spec.name}: generating the built-in corpus under {root} (first use)")
        spec.prepare(root)
        return root
    raise CorpusNotFound(f"{spec.name}: not found under {root}. Obtain it ({how_to_obtain(spec)}) and put it "
                         f"there, or point --data-dir "
                         f"{spec.name}=PATH (env HARNESS_DATA_{spec.name.upper().replace('-', '_')}) at it; "
                         f"see `harness data list`")


def open_corpus(settings: Settings, spec: DatasetSpec, with_folds: bool = True, say=print) -> Corpus:
    """Locate, scan and store the manifest (with its problems table), then the stored or new folds."""
    root = locate(settings, spec, say)
    manifest = spec.scan(root)
    folder = settings.manifest_dir(manifest.dataset)
    manifest.save(folder)
    if len(manifest.problems):
        say(f"[data] {manifest.dataset}: {len(manifest.problems)} files could not become clips "
            f"(see {folder / 'problems.csv'})")
    folds = load_or_make_folds(folder / "folds.json", manifest, spec.protocol) if with_folds else []
    return Corpus(spec, root, manifest, folds)
