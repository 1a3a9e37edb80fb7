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

# A scan that loses more than this share of the files or rows it read (names that do not fit the card, rows
# that point outside the corpus, codes the card cannot map) is a card or layout mistake, not a corpus to
# benchmark. Raise it (HARNESS_MAX_LOST_SHARE=0.6) for a corpus known to hold many unrelated files.
MAX_LOST_SHARE = 0.25
LOST_SHARE_ENV = "HARNESS_MAX_LOST_SHARE"


class CorpusNotFound(FileNotFoundError):
    """The corpus is not where the settings say; the message names the place and how to point elsewhere."""


class CorpusUnusable(CorpusNotFound):
    """The scan found files but (almost) none became clips. A CorpusNotFound, so every command that reports a
    missing corpus as one line reports this one the same way, before anything is extracted or cached."""


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


class ProtocolUnbuildable(ValueError):
    """The card's protocol cannot split this corpus (too few speakers or sessions for its folds plus a
    validation part): one line naming the card, the protocol and the way out, raised while planning."""


def max_lost_share() -> float:
    """The share of scanned files a scan may lose: MAX_LOST_SHARE, or HARNESS_MAX_LOST_SHARE when set."""
    import os

    raw = os.environ.get(LOST_SHARE_ENV)
    if raw is None:
        return MAX_LOST_SHARE
    try:
        value = float(raw)
    except ValueError:
        raise CorpusUnusable(f"{LOST_SHARE_ENV}={raw!r}: expected a share between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise CorpusUnusable(f"{LOST_SHARE_ENV}={raw!r}: expected a share between 0 and 1")
    return value


def check_scan(manifest: Manifest, problems_path: Path, first: int = 3) -> None:
    """Raise CorpusUnusable when a scan read files but made no clip of them, or lost more than the allowed
    share; the message gives the first reasons and the problems table, so nothing empty is ever cached."""
    counts = manifest.scan_counts
    items, lost = int(counts.get("items", 0)), int(counts.get("lost", 0))
    if items == 0:
        return
    allowed = max_lost_share()
    if len(manifest) > 0 and lost <= allowed * items:
        return
    problems = manifest.problems
    if "reason" in problems and len(problems):
        serious = problems[~problems["reason"].astype(str).str.contains("clips kept|excluded by design")]
        shown = (serious if len(serious) else problems).head(first)
        reasons = "; ".join(f"{row.path}: {row.reason}" for row in shown.itertuples())
    else:
        reasons = "no reasons recorded"
    what = (f"0 clips from {items} files or rows" if len(manifest) == 0 else
            f"{lost} of {items} files or rows lost (more than {allowed:.0%}, {LOST_SHARE_ENV} to change)")
    raise CorpusUnusable(f"{manifest.dataset}: the scan of {manifest.root} made {what}. First reasons: "
                         f"{reasons}. All problems: {problems_path}")


def open_corpus(settings: Settings, spec: DatasetSpec, with_folds: bool = True, say=print) -> Corpus:
    """Locate, scan and store the manifest (with its problems table), then the stored or new folds.

    A scan that made no clip from the files it read, or lost too many (`check_scan`), stops here, before
    folds, extraction or any cache see it."""
    root = locate(settings, spec, say)
    manifest = spec.scan(root)
    folder = settings.manifest_dir(manifest.dataset)
    manifest.save(folder)
    check_scan(manifest, folder / "problems.csv")
    if len(manifest.problems):
        say(f"[data] {manifest.dataset}: {len(manifest.problems)} problem rows "
            f"(see {folder / 'problems.csv'})")
    folds = make_folds_or_explain(folder / "folds.json", manifest, spec) if with_folds else []
    return Corpus(spec, root, manifest, folds)


def make_folds_or_explain(path: Path, manifest: Manifest, spec: DatasetSpec) -> list[Fold]:
    """The stored or new folds; a protocol that cannot split the corpus is a ProtocolUnbuildable naming the
    card (the file to edit) and the protocol, instead of a traceback from the protocol code."""
    try:
        return load_or_make_folds(path, manifest, spec.protocol)
    except (ValueError, TypeError) as error:  # TypeError: a parameter the protocol does not take
        card = spec.card or spec.source or spec.name
        raise ProtocolUnbuildable(f"{card}: protocol {spec.protocol.label()} cannot split {manifest.dataset} "
                                  f"({len(manifest)} clips, {manifest.table['speaker'].nunique()} speakers): "
                                  f"{error}") from None


def check_protocol(settings: Settings, spec: DatasetSpec) -> None:
    """Open the corpus and build its folds while planning, so a corpus that scans to nothing or a protocol that
    cannot split it stops the command in one line before Ray starts or anything is extracted. The folds are
    stored, so the run itself reuses them. A corpus that is not there (or the built-in one, not generated yet)
    is left to the run, which skips or generates it."""
    if not spec.is_present(settings.data_dir(spec.name)):
        return
    corpus = open_corpus(settings, spec, with_folds=True, say=lambda _: None)
    check_classes(corpus.manifest, str(spec.card or spec.source or spec.name))


def check_classes(manifest: Manifest, where: str) -> None:
    """A corpus with fewer than 2 classes present is a CorpusUnusable naming `where` (the card): a one-class
    corpus once scanned with "problems: none" and ranked `test UAR 1.000`."""
    import numpy as np

    from harness.datachecks import too_few_classes

    labels = np.array([manifest.classes.index(label) for label in manifest.table["label"]], dtype=int)
    reason = too_few_classes(labels, manifest.classes)
    if reason:
        raise CorpusUnusable(f"{where}: {manifest.dataset}: {reason}")
