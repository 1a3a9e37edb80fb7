"""Cross-corpus evaluation: train on corpus A, test once on corpus B, over the classes both map to.

Labels are mapped through one shared emotion set (`harness/datasets/cross_corpus.yaml`). Where a corpus's map
comes from, first found wins (`resolve_pair`, at planning time, before anything is extracted):
  1. a label map the user passes (`--label-map FILE`, same format as the package table);
  2. the card's own `cross_corpus:` declaration (class -> shared class or null), so a new corpus joins the
     cross-corpus axis without editing package data;
  3. the package table (corpora that ship with the harness, and the built-in synthetic one, which has no card);
  4. the shared names themselves: a card whose classes are all named as in the shared set needs no map.
For a pair (A, B):
  classes   the shared classes that both A and B map some class onto; A's and B's other classes are dropped,
            and the report names every mapped and dropped class;
  search    `trials` configurations sampled (seeded) from the method's search space; each is fitted on every
            fold's training part of A and scored on the fold's validation part of A; the best mean validation
            score wins. B is not looked at;
  test      each of A's fold models (the chosen configuration, exactly as validated) predicts all of B once;
            the matrix cell is the mean and spread over those models. The same models score A's own test parts,
            the diagonal of the train x test matrix.
Speaker independence holds by construction (B's clips are never in A's folds); `assert_disjoint` checks it on
clip ids anyway, so a corpus listed on both sides is an error rather than an optimistic number.
Modalities are those both corpora have, with features of equal width (the same extractor on both sides).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics import HEADLINE_METRICS, score
from harness.protocols import Fold, LeakageError
from methods import MultimodalData, get_method

DEFAULT_LABEL_MAP = Path(__file__).resolve().parent.parent / "datasets" / "cross_corpus.yaml"
CROSS_COLUMNS = ["train_on", "test_on", "fold", "metric", "value"]


class LabelMapError(ValueError):
    """A label map that is not valid YAML of the documented shape; the message names the file and the fix."""


@dataclass(frozen=True)
class LabelMap:
    shared: tuple[str, ...]
    corpora: dict[str, dict[str, str | None]]
    source: str
    user: bool = False  # passed by the user (--label-map): its entries win over the cards' declarations

    def resolve(self, dataset: str, classes: Sequence[str], declared: Mapping[str, str | None] | None = None,
                card: str = "") -> dict[str, str | None]:
        """class -> shared class (None: dropped) for `dataset`, from the first source that has it (module doc).

        `declared` is the card's `cross_corpus:` map; `card` its file, named in errors."""
        declared = dict(declared or {})
        where = card or dataset
        if dataset in self.corpora and (self.user or not declared):
            return self.mapping(dataset, classes)
        if declared:
            missing = [c for c in classes if c not in declared and c not in self.shared]
            if missing:
                raise LabelMapError(f"{where}: cross_corpus does not map classes {missing}; map each onto one of "
                                    f"{list(self.shared)} or null to drop it")
            wrong = {c: t for c, t in declared.items() if t is not None and t not in self.shared}
            if wrong:
                raise LabelMapError(f"{where}: cross_corpus maps {wrong} onto classes outside the shared set "
                                    f"{list(self.shared)} of {self.source}; use a shared class or null")
            return {c: declared[c] if c in declared else c for c in classes}
        unnamed = [c for c in classes if c not in self.shared]
        if unnamed:
            raise LabelMapError(f"{where}: classes {unnamed} are not in the shared cross-corpus set "
                                f"{list(self.shared)}; declare `cross_corpus: {{CLASS: SHARED or null}}` in the "
                                f"card, or pass --label-map FILE with an entry for {dataset!r}")
        return {c: c for c in classes}

    def with_entries(self, entries: Mapping[str, Mapping[str, str | None]]) -> LabelMap:
        """This map with `entries` (corpus -> resolved class map) written in: what a cross-corpus task carries."""
        return LabelMap(self.shared, {**self.corpora, **{k: dict(v) for k, v in entries.items()}}, self.source,
                        self.user)

    def mapping(self, dataset: str, classes: Sequence[str]) -> dict[str, str | None]:
        """class -> shared class (None: dropped) for `dataset`; every class must be listed."""
        if dataset not in self.corpora:
            raise LabelMapError(f"{self.source}: no entry for corpus {dataset!r}; add `{dataset}: {{CLASS: SHARED or "
                                f"null, ...}}` under corpora (known: {sorted(self.corpora)})")
        table = self.corpora[dataset]
        missing = [c for c in classes if c not in table]
        if missing:
            raise LabelMapError(f"{self.source}: corpora.{dataset} does not list classes {missing}; map each onto "
                                f"one of {list(self.shared)} or null to drop it")
        return {c: table[c] for c in classes}


def load_label_map(path: str | Path | None = None) -> LabelMap:
    """The package table, or the user's file (then `user`: its entries override the cards' declarations)."""
    from harness.names import InputError, load_yaml

    user = path is not None
    path = Path(path or DEFAULT_LABEL_MAP)
    try:  # the bounded loader settings and cards use: a user's --label-map is hand-written input too
        data = load_yaml(path, "label map")
    except FileNotFoundError:
        raise LabelMapError(f"label map {path} does not exist") from None
    except InputError as error:
        raise LabelMapError(str(error)) from None
    if not isinstance(data, dict) or not isinstance(data.get("shared"), list) or not isinstance(
            data.get("corpora"), dict):
        raise LabelMapError(f"{path}: expected keys `shared: [CLASS, ...]` and `corpora: {{NAME: {{CLASS: SHARED}}}}`")
    shared = tuple(str(c) for c in data["shared"])
    corpora: dict[str, dict[str, str | None]] = {}
    for name, table in data["corpora"].items():
        if not isinstance(table, dict):
            raise LabelMapError(f"{path}: corpora.{name} must map each class to a shared class or null")
        for cls, target in table.items():
            if target is not None and target not in shared:
                raise LabelMapError(f"{path}: corpora.{name}.{cls} maps to {target!r}, which is not in shared "
                                    f"{list(shared)}; use a shared class or null")
        corpora[str(name)] = {str(k): (None if v is None else str(v)) for k, v in table.items()}
    return LabelMap(shared, corpora, str(path), user)


def resolve_pair(label_map: LabelMap, sides: Mapping[str, tuple[Sequence[str], Mapping[str, str | None], str]]
                 ) -> tuple[LabelMap, PairClasses]:
    """Check a (train, test) pair at planning time: each side's map (corpus -> (classes, the card's declaration,
    the card file)) resolved, and at least two shared classes reached by both. Returns the map with both entries
    written in (what the task uses and the result's fingerprint records) and the pair's classes."""
    entries = {name: label_map.resolve(name, classes, declared, card)
               for name, (classes, declared, card) in sides.items()}
    resolved = label_map.with_entries(entries)
    (train_on, (train_classes, _, _)), (test_on, (test_classes, _, _)) = sides.items()
    return resolved, pair_classes(resolved, train_on, train_classes, test_on, test_classes)


@dataclass
class PairClasses:
    """What a (train, test) pair is evaluated over, for the report."""

    shared: list[str]  # in the label map's order
    mapped: dict[str, dict[str, str]] = field(default_factory=dict)  # corpus -> class -> shared class (kept)
    dropped: dict[str, list[str]] = field(default_factory=dict)  # corpus -> classes left out, and why in words

    def describe(self) -> str:
        parts = [f"shared classes: {', '.join(self.shared)}"]
        for corpus, classes in self.dropped.items():
            parts.append(f"dropped from {corpus}: {', '.join(classes) if classes else 'none'}")
        return "; ".join(parts)


def pair_classes(label_map: LabelMap, train_on: str, train_classes: Sequence[str], test_on: str,
                 test_classes: Sequence[str]) -> PairClasses:
    maps = {train_on: label_map.mapping(train_on, train_classes), test_on: label_map.mapping(test_on, test_classes)}
    reached = [{t for t in m.values() if t is not None} for m in maps.values()]
    shared = [c for c in label_map.shared if all(c in r for r in reached)]
    if len(shared) < 2:
        raise LabelMapError(f"{label_map.source}: {train_on} and {test_on} share {shared or 'no'} class(es) "
                            "through the label map; cross-corpus evaluation needs at least two")
    out = PairClasses(shared)
    for corpus, mapping in maps.items():
        out.mapped[corpus] = {c: t for c, t in mapping.items() if t in shared}
        out.dropped[corpus] = [c for c, t in mapping.items() if t not in shared]
    return out


def to_shared(data: MultimodalData, mapping: Mapping[str, str], shared: Sequence[str],
              modalities: Sequence[str] | None = None) -> MultimodalData:
    """The clips whose class is mapped, relabelled onto `shared` (class order = `shared`), with `modalities` only."""
    keep = np.array([data.classes[y] in mapping for y in data.labels])
    subset = data.subset(np.flatnonzero(keep))
    labels = np.array([list(shared).index(mapping[data.classes[y]]) for y in subset.labels], dtype=int)
    used = list(modalities or subset.modalities)
    return MultimodalData(ids=subset.ids, classes=list(shared),
                          pooled={m: a for m, a in subset.pooled.items() if m in used},
                          sequences={m: s for m, s in subset.sequences.items() if m in used},
                          available={m: a for m, a in subset.available.items() if m in used},
                          labels=labels, groups=subset.groups)


def restrict_folds(folds: list[Fold], ids: Sequence[str]) -> list[Fold]:
    kept = set(ids)
    return [Fold(f.name, [c for c in f.train if c in kept], [c for c in f.val if c in kept],
                 [c for c in f.test if c in kept]) for f in folds]


def common_modalities(train: MultimodalData, test: MultimodalData, train_on: str, test_on: str) -> list[str]:
    """Modalities both have, with features of the same width (else the extractors differ: an error)."""
    common = [m for m in train.modalities if m in test.modalities]
    for m in common:
        a, b = train.pooled[m].shape[1], test.pooled[m].shape[1]
        if a != b:
            raise ValueError(f"{m} features of {train_on} have {a} dimensions and of {test_on} {b}: use the same "
                             f"{m} extractor for both (`--features {m}=NAME` or `features:` in the settings file)")
    if not common:
        raise ValueError(f"{train_on} and {test_on} have no modality in common")
    return common


def assert_disjoint(train: MultimodalData, test: MultimodalData, train_on: str, test_on: str) -> None:
    shared = set(train.ids) & set(test.ids)
    if shared:
        raise LeakageError(f"{len(shared)} clips of {test_on} are also in {train_on} (e.g. {sorted(shared)[:3]}); "
                           "a corpus cannot be tested on clips it was trained on")


def sample_configs(method: str, trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` configurations drawn (seeded) from the method's search space; defaults only when it has none."""
    space = get_method(method).search_space()
    if not space:
        return [{}]
    rng = np.random.default_rng(seed)
    return [{name: param.sample(rng) for name, param in space.items()} for _ in range(trials)]


def _fit(method: str, config: dict[str, Any], train: MultimodalData, val: MultimodalData):
    return get_method(method).build(**config).fit(train, val)


def cross_corpus(method: str, fixed: Mapping[str, Any], train: MultimodalData, folds: list[Fold],
                 test: MultimodalData, train_on: str, test_on: str, label_map: LabelMap, metric: str = "uar",
                 trials: int = 4, seed: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Tidy scores (train_on, test_on, fold, metric, value) for B and for A's own test parts, and a record of the
    pair: classes (mapped, dropped), modalities, chosen configuration and its validation score on A."""
    assert_disjoint(train, test, train_on, test_on)
    classes = pair_classes(label_map, train_on, train.classes, test_on, test.classes)
    modalities = common_modalities(train, test, train_on, test_on)
    a = to_shared(train, classes.mapped[train_on], classes.shared, modalities)
    b = to_shared(test, classes.mapped[test_on], classes.shared, modalities)
    a_folds = restrict_folds(folds, a.ids)
    best: tuple[float, dict[str, Any], dict[str, Any]] | None = None
    for config in sample_configs(method, trials, seed):
        full = {**fixed, **config}
        models, values = {}, []
        for fold in a_folds:
            val = a.select(fold.val)
            models[fold.name] = _fit(method, full, a.select(fold.train), val)
            values.append(getattr(score(val.labels, models[fold.name].predict(val), a.classes), metric))
        mean = float(np.mean(values))
        if best is None or mean > best[0]:
            best = (mean, full, models)
    assert best is not None
    val_score, config, models = best
    rows = []
    for fold in a_folds:
        own = a.select(fold.test)
        for target, name in ((b, test_on), (own, train_on)):
            scores = score(target.labels, models[fold.name].predict(target), a.classes)
            rows += [{"train_on": train_on, "test_on": name, "fold": fold.name, "metric": m,
                      "value": float(getattr(scores, m))} for m in HEADLINE_METRICS]
    record = {"train_on": train_on, "test_on": test_on, "shared": classes.shared, "mapped": classes.mapped,
              "dropped": classes.dropped, "modalities": modalities, "config": config, f"val_{metric}": val_score,
              "n_train_clips": len(a), "n_test_clips": len(b), "classes": classes.describe()}
    return pd.DataFrame(rows, columns=CROSS_COLUMNS), record
