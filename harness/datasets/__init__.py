"""Dataset registry: each corpus is a `DatasetSpec` (built-in code or a YAML card in `datasets/`).

The spec knows where the corpus is looked for, whether it is present, how to scan it into a `Manifest`,
its classes, its default protocol and its default feature extractors per modality.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.manifest import Manifest
from harness.protocols import ProtocolSpec
from harness.registry import Registry


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the harness needs to know about one corpus.

    scan:      root -> Manifest (reads the corpus as distributed; problems are recorded in the manifest).
    is_present: root -> bool (cheap check used by `harness run --all` to pick up installed corpora).
    prepare:   optional root -> None that creates the corpus (only the built-in synthetic corpus has one).
    polarity:  class -> "positive" | "negative" | "neutral", used by polarity-aware losses.
    headline_metric: the metric the field reports first for this corpus (e.g. "uar" or "weighted_f1").
    protocols: named alternative protocols (e.g. a 10-fold variant, or a random split labelled as
               speaker-overlapping); `protocol` is the default.
    targets:   alternative label sets (e.g. MELD sentiment, CREMA-D perceived emotion, IEMOCAP 6-class), each
               scanned with `scan_target(root, name)`; the manifest's dataset is then `<name>@<target>`.
    """

    name: str
    title: str
    classes: tuple[str, ...]
    modalities: tuple[str, ...]
    protocol: ProtocolSpec
    features: dict[str, str]
    scan: Callable[[Path], Manifest]
    is_present: Callable[[Path], bool]
    prepare: Callable[[Path], None] | None = None
    headline_metric: str = "uar"
    polarity: dict[str, str] = field(default_factory=dict)
    description: str = ""
    source: str = ""
    # Optional, filled from dataset cards (harness.datasets.cards):
    citation: str = ""
    licence: str = ""
    homepage: str = ""
    obtain: dict[str, Any] = field(default_factory=dict)  # instructions, archives (name/url/size/sha256), checksums
    layout: str = ""
    protocols: dict[str, ProtocolSpec] = field(default_factory=dict)  # named alternatives to `protocol`
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # alternative label sets -> their classes
    scan_target: Callable[[Path, str], Manifest] | None = None  # (root, target name) -> Manifest
    card: Path | None = None
    cross_corpus: dict[str, str | None] = field(default_factory=dict)  # class -> shared class (the card's map)
    # rating set name -> the card's `ratings:` entry (annotator counts per clip, for soft-label scores)
    ratings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return self.prepare is not None

    def with_protocol(self, name: str | None) -> DatasetSpec:
        """This corpus evaluated by the card's alternative protocol `name` (None or "default": unchanged), so a
        paper's protocol (e.g. RAVDESS `av-crossattention-10fold`) is one setting away. An unknown name is an
        error that lists the alternatives and says where to add one."""
        from dataclasses import replace

        if name in (None, "", "default"):
            return self
        if name not in self.protocols:
            where = self.card or self.source or "its spec"
            raise KeyError(f"{self.name}: no protocol alternative {name!r}; {where} defines: "
                           f"{', '.join(self.protocols) or 'none'} (add one under `protocols:` in the card)")
        return replace(self, protocol=replace(self.protocols[name], alternative=name))

    def with_target(self, name: str | None) -> DatasetSpec:
        """This corpus scanned with the card's alternative label set or subset `name` (e.g. RAVDESS `song`);
        classes follow the target and the manifest's dataset becomes `<name>@<target>`, so fingerprints and
        results differ from the default's. None or "default": unchanged."""
        from dataclasses import replace

        if name in (None, "", "default"):
            return self
        if name not in self.targets or self.scan_target is None:
            where = self.card or self.source or "its spec"
            raise KeyError(f"{self.name}: no target {name!r}; {where} defines: "
                           f"{', '.join(self.targets) or 'none'} (add one under `targets:` in the card)")
        scan_target = self.scan_target
        return replace(self, classes=self.targets[name], scan=lambda root: scan_target(root, name),
                       polarity={c: p for c, p in self.polarity.items() if c in self.targets[name]})


_DATASETS: Registry[DatasetSpec] = Registry("dataset", ("harness.datasets.synthetic", "harness.datasets.cards"))
# Cards that failed validation: name -> the error (naming the file and the field). A broken card must not stop
# commands about other corpora, so it is recorded here instead of raising at import; using it is the error.
_BROKEN: dict[str, str] = {}


class BrokenCardError(KeyError):
    """A dataset whose card does not validate; a KeyError so every "unknown name" path reports it in one line."""

    def __str__(self) -> str:
        return str(self.args[0])


def mark_broken(name: str, error: str) -> None:
    """Record that the card for `name` is broken; it also hides an earlier (e.g. shipped) card of that name, since
    the user's newer card says the corpus is meant to be read differently."""
    _DATASETS.items.pop(name, None)
    _BROKEN[name] = error


def broken_cards() -> dict[str, str]:
    """{dataset name: why its card is broken}, for `harness data list` and skip lines."""
    _DATASETS.load()
    return dict(sorted(_BROKEN.items()))


def register_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Register a corpus; a second, different spec under one name is an error unless `replace` says so.
    A valid card registered after a broken one of the same name (a fixed override) clears the broken mark."""
    _BROKEN.pop(spec.name, None)
    return _DATASETS.add(spec.name, spec, replace=replace)


def dataset_names() -> list[str]:
    return _DATASETS.names()


def get_dataset(name: str) -> DatasetSpec:
    """The registered corpus `name`; a broken card is a BrokenCardError naming the card file and the field."""
    _DATASETS.load()
    if name in _BROKEN:
        raise BrokenCardError(f"dataset {name!r} cannot be used: {_BROKEN[name]}")
    return _DATASETS.get(name)
