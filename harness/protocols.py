"""Evaluation protocols: how a manifest is split into (train, validation, test) folds.

Folds are computed once per dataset and stored next to the manifest, so every method sees identical splits.
Protocols that claim speaker independence are checked by `assert_speaker_independent` every time folds are
made or loaded: asserted, not assumed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import atomic
from harness.manifest import Manifest
from harness.registry import Registry
from harness.results import ALTERNATIVE_SEPARATOR


@dataclass(frozen=True)
class Fold:
    name: str
    train: list[str]
    val: list[str]
    test: list[str]


@dataclass(frozen=True)
class ProtocolSpec:
    """A protocol by name plus its parameters, as written in a dataset card or on the command line.

    `alternative` is the card's name for it when it was chosen as one of the card's `protocols:` alternatives
    (e.g. RAVDESS `av-crossattention-10fold`); the label then starts with that name, so the report and the
    paper-claim comparison say which paper protocol a result was evaluated under, not only its mechanics.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    alternative: str = ""

    def label(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        mechanics = f"{self.name}({inner})" if self.params else self.name
        return f"{self.alternative}{ALTERNATIVE_SEPARATOR}{mechanics}" if self.alternative else mechanics


@dataclass(frozen=True)
class Protocol:
    name: str
    make: Callable[..., list[Fold]]
    speaker_independent: bool
    description: str


class LeakageError(AssertionError):
    """A speaker (or clip) appears in two parts of one fold."""


_PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register_protocol(name: str, speaker_independent: bool, description: str):
    def decorate(make: Callable[..., list[Fold]]) -> Callable[..., list[Fold]]:
        _PROTOCOLS.add(name, Protocol(name, make, speaker_independent, description))
        return make

    return decorate


def protocol_names() -> list[str]:
    return _PROTOCOLS.names()


def get_protocol(name: str) -> Protocol:
    return _PROTOCOLS.get(name)


def _ids_by_speaker(manifest: Manifest) -> dict[str, list[str]]:
    table = manifest.table
    return {str(s): table.loc[table["speaker"].astype(str) == str(s), "clip_id"].tolist()
            for s in sorted(table["speaker"].astype(str).unique())}


SMALL_CORPUS_HINT = ("for a corpus of 2-3 speakers declare `protocol: {name: leave-one-speaker-out, params: "
                     "{val: clips}}` (validation drawn from the training speakers' clips)")


def _speaker_groups(manifest: Manifest, k: int, seed: int) -> list[list[str]]:
    speakers = sorted(_ids_by_speaker(manifest))
    if k < 3:
        raise ValueError(f"{len(speakers)} speakers, k={k}: speaker folds need k >= 3 (train, validation and test "
                         f"speakers); {SMALL_CORPUS_HINT}")
    if len(speakers) < k:
        raise ValueError(f"{len(speakers)} speakers cannot fill {k} speaker folds; lower k, or "
                         f"{SMALL_CORPUS_HINT}")
    order = np.random.default_rng(seed).permutation(len(speakers))
    return [[speakers[i] for i in order[g::k]] for g in range(k)]


@register_protocol("speaker-kfold", True,
                   "k speaker groups; fold i tests group i and validates on group i+1 (or on `val_speakers` "
                   "speakers drawn from the non-test speakers); the rest train")
def speaker_kfold(manifest: Manifest, k: int = 5, seed: int = 0, val_speakers: int | None = None) -> list[Fold]:
    """Speaker-independent k-fold. With 24 RAVDESS actors, k=6 gives 4 test actors per fold (EmoBox); k=10
    gives about 80/10/10 train/val/test by actor. Validation speakers never include test speakers."""
    by_speaker = _ids_by_speaker(manifest)
    groups = _speaker_groups(manifest, k, seed)
    folds = []
    for i in range(k):
        test_speakers = groups[i]
        if val_speakers is None:
            val = groups[(i + 1) % k]
        else:
            rest = sorted(s for g, grp in enumerate(groups) if g != i for s in grp)
            if not 0 < val_speakers < len(rest):
                raise ValueError(f"{manifest.dataset}: val_speakers={val_speakers} must be between 1 and "
                                 f"{len(rest) - 1} (the non-test speakers, less one to train on)")
            order = np.random.default_rng([seed, i]).permutation(len(rest))
            val = [rest[j] for j in order[:val_speakers]]
        held = set(test_speakers) | set(val)
        train_speakers = [s for grp in groups for s in grp if s not in held]
        folds.append(Fold(
            name=f"fold{i}",
            train=[c for s in train_speakers for c in by_speaker[s]],
            val=[c for s in val for c in by_speaker[s]],
            test=[c for s in test_speakers for c in by_speaker[s]],
        ))
    return folds


VAL_FROM_TRAINING = "clips"  # leave-one-speaker-out's `val` for 2-3-speaker corpora


def validates_on_training_speakers(spec: ProtocolSpec) -> bool:
    """Whether the protocol's validation clips come from the training speakers (leave-one-speaker-out with
    val=clips): test speakers are still unseen, but model selection is scored on speakers the model trained on,
    so the chosen configuration can favour them. The report says so beside such results."""
    return spec.name == "leave-one-speaker-out" and spec.params.get("val") == VAL_FROM_TRAINING


@register_protocol("leave-one-speaker-out", True,
                   "one fold per speaker; validation is the next speaker in a seeded order, or with val=clips "
                   "(corpora of 2-3 speakers) a seeded `val_fraction` of the training speakers' clips")
def leave_one_speaker_out(manifest: Manifest, seed: int = 0, val: str = "speaker",
                          val_fraction: float = 0.2) -> list[Fold]:
    """Test on each speaker in turn. A held-out validation speaker needs 3 speakers; a 2-3-speaker corpus may
    declare val=clips instead: the weaker guarantee (validation speakers are training speakers) is then stated
    in the report (`validates_on_training_speakers`). val=clips is refused from 4 speakers, where a held-out
    validation speaker is possible."""
    by_speaker = _ids_by_speaker(manifest)
    if val == VAL_FROM_TRAINING:
        return _loso_val_from_training(manifest, by_speaker, seed, val_fraction)
    if val != "speaker":
        raise ValueError(f"leave-one-speaker-out val={val!r}: use 'speaker' (a held-out speaker) or "
                         f"'{VAL_FROM_TRAINING}' (training clips, 2-3-speaker corpora)")
    n_speakers = len(by_speaker)
    folds = speaker_kfold(manifest, k=n_speakers, seed=seed)
    by_speaker = _ids_by_speaker(manifest)
    speaker_of = {c: s for s, ids in by_speaker.items() for c in ids}
    return [Fold(f"test-{speaker_of[f.test[0]]}", f.train, f.val, f.test) for f in folds]


def _loso_val_from_training(manifest: Manifest, by_speaker: dict[str, list[str]], seed: int,
                            val_fraction: float) -> list[Fold]:
    speakers = sorted(by_speaker)
    if not 2 <= len(speakers) <= 3:
        raise ValueError(f"{len(speakers)} speakers: leave-one-speaker-out with val={VAL_FROM_TRAINING} is for "
                         "corpora of 2-3 speakers" + (" (fewer cannot test on an unseen speaker)"
                                                      if len(speakers) < 2 else
                                                      "; with more, validate on a held-out speaker (val: speaker)"))
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must lie strictly between 0 and 1")
    folds = []
    for i, speaker in enumerate(speakers):
        train = [c for s in speakers if s != speaker for c in by_speaker[s]]
        order = np.random.default_rng([seed, i]).permutation(len(train))
        held = {train[j] for j in order[:max(1, round(val_fraction * len(train)))]}
        folds.append(Fold(f"test-{speaker}", [c for c in train if c not in held], [c for c in train if c in held],
                          list(by_speaker[speaker])))
    return folds


@register_protocol("leave-one-session-out", True,
                   "one fold per session (column `session`); validation is one speaker of the next session "
                   "(val='speaker') or that whole session (val='session'); never the test session")
def leave_one_session_out(manifest: Manifest, val: str = "speaker") -> list[Fold]:
    """IEMOCAP's standard 5-fold protocol. Validating on one speaker of another session keeps the other speaker
    of that session in training; successive folds alternate which of its speakers is held out."""
    if val not in ("speaker", "session"):
        raise ValueError(f"{manifest.dataset}: leave-one-session-out val={val!r}; use 'speaker' or 'session'")
    table = manifest.table
    sessions = table["session"]
    if sessions.isna().any() or (sessions.astype(str) == "").any():
        raise ValueError(f"{manifest.dataset}: leave-one-session-out needs a session for every clip; the card "
                         "must fill the `session` column")
    names = sorted(sessions.astype(str).unique())
    if len(names) < 3:
        raise ValueError(f"{manifest.dataset}: {len(names)} sessions; leave-one-session-out needs at least 3")
    folds = []
    for i, test_session in enumerate(names):
        val_session = names[(i + 1) % len(names)]
        in_val = sessions.astype(str) == val_session
        if val == "speaker":
            speakers = sorted(table.loc[in_val, "speaker"].astype(str).unique())
            in_val &= table["speaker"].astype(str) == speakers[i % len(speakers)]
        in_test = sessions.astype(str) == test_session
        folds.append(Fold(f"test-{test_session}", table.loc[~in_test & ~in_val, "clip_id"].tolist(),
                          table.loc[in_val, "clip_id"].tolist(), table.loc[in_test, "clip_id"].tolist()))
    return folds


@register_protocol("official-split", False,
                   "the corpus's own train/dev/test partition (column `split`), one fold")
def official_split(manifest: Manifest) -> list[Fold]:
    table = manifest.table
    parts = {p: table.loc[table["split"] == p, "clip_id"].tolist() for p in ("train", "dev", "test")}
    empty = [p for p, ids in parts.items() if not ids and p != "test"]
    if empty:
        raise ValueError(f"{manifest.dataset}: official split has no {empty} clips")
    return [Fold("official", parts["train"], parts["dev"], parts["test"])]


@register_protocol("random-kfold", False,
                   "SPEAKER-OVERLAPPING random k-fold: optimistic, offered only for comparison with papers")
def random_kfold(manifest: Manifest, k: int = 5, seed: int = 0) -> list[Fold]:
    ids = np.array(manifest.ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    parts = [ids[order[g::k]].tolist() for g in range(k)]
    return [Fold(f"fold{i}",
                 [c for g, p in enumerate(parts) if g not in (i, (i + 1) % k) for c in p],
                 parts[(i + 1) % k], parts[i]) for i in range(k)]


# ---- protocols defined by committed fold files (published splits) -----------------------------------------
# A fold file (datasets/folds/<name>.yaml, written by tools/import_fold_files.py) holds one paper's or toolkit's
# published folds with their source (repository, commit, paths, blob ids) and licence. `unit: speaker` files
# list each fold's train and test speakers; `unit: clip` files list clip ids (used where speakers recur, e.g.
# EmoBox's EmoDB folds). Sources commit no validation lists, so each fold's validation part is carved from its
# training part here, seeded: whole speakers under `file-folds`, random clips under the speaker-overlapping form.
FOLDS_DIR_NAME = "folds"


class FoldFileError(ValueError):
    """A fold file that is missing, malformed, or used under a name its folds do not deserve; one line."""


def _fold_file_path(file: str) -> Path:
    """`file` as written in a card: absolute, or relative to a card folder (the shipped cards, then each folder
    in HARNESS_CARDS), e.g. `folds/hicmae-ravdess-6fold.yaml`."""
    import os
    from importlib.resources import files

    path = Path(file)
    if path.is_absolute():
        candidates = [path]
    else:
        folders = [Path(str(files("harness") / "cards"))]
        folders += [Path(p) for p in os.environ.get("HARNESS_CARDS", "").split(os.pathsep) if p]
        candidates = [folder / path for folder in folders]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FoldFileError(f"fold file {file!r} not found (looked in {', '.join(str(c) for c in candidates)}); "
                        "write the path relative to the card's folder, e.g. folds/<name>.yaml")


def read_fold_file(file: str) -> dict[str, Any]:
    """The fold file's content, checked for shape; speaker and clip ids as strings."""
    import yaml

    path = _fold_file_path(file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise FoldFileError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict) or data.get("unit") not in ("speaker", "clip") or not data.get("folds"):
        raise FoldFileError(f"{path}: a fold file needs `unit: speaker|clip` and a non-empty `folds:` list")
    for i, fold in enumerate(data["folds"]):
        if not isinstance(fold, dict) or not fold.get("train") or not fold.get("test"):
            raise FoldFileError(f"{path}: folds[{i}] needs non-empty `train` and `test` lists")
        fold["train"] = [str(x) for x in fold["train"]]
        fold["test"] = [str(x) for x in fold["test"]]
    data["omitted_clips"] = [str(x) for x in data.get("omitted_clips") or []]
    data["path"] = str(path)
    return data


def check_file_folds_name(name: str, params: dict[str, Any], where: str) -> None:
    """Refuse a fold file whose own folds share speakers between train and test under the speaker-independent
    protocol `file-folds` (checked from the file's `speaker_independent` record when a card is read; the
    manifest-level check runs again when folds are made)."""
    if name != "file-folds":
        return
    data = read_fold_file(str(params.get("file", "")))
    if not data.get("speaker_independent", False):
        raise FoldFileError(
            f"{where}: {data['path']} is not speaker-independent (its folds put the same speakers in train and "
            "test), so it cannot be used as `file-folds`; use `name: file-folds-speaker-overlapping` and an "
            "alternative name that says so (results are then marked speaker-dependent)")


def _file_fold_parts(manifest: Manifest, data: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    """(name, train clips, test clips) of each fold, restricted to the manifest's clips; the source's omitted
    clips are left out of every part, as the source left them out."""
    table = manifest.table
    speaker_of = dict(zip(table["clip_id"].astype(str), table["speaker"].astype(str), strict=True))
    omitted = set(data["omitted_clips"])
    parts = []
    if data["unit"] == "speaker":
        known = {s for f in data["folds"] for s in f["train"] + f["test"]}
        unknown = sorted(set(speaker_of.values()) - known)
        if unknown:
            raise FoldFileError(f"{manifest.dataset}: speakers {unknown[:5]} are in no fold of {data['path']}; "
                                "the fold file does not describe this corpus (or this card's speaker ids)")
        for f in data["folds"]:
            train, test = set(f["train"]), set(f["test"])
            parts.append((f["name"], [c for c, s in speaker_of.items() if s in train and c not in omitted],
                          [c for c, s in speaker_of.items() if s in test and c not in omitted]))
    else:
        for f in data["folds"]:
            parts.append((f["name"], [c for c in f["train"] if c in speaker_of],
                          [c for c in f["test"] if c in speaker_of]))
    for name, train, test in parts:
        if not train or not test:
            raise FoldFileError(f"{manifest.dataset} {name}: no clips of this corpus in its "
                                f"{'train' if not train else 'test'} part of {data['path']}")
    return parts


@register_protocol("file-folds", True,
                   "a published split from a committed fold file (`file`); validation: `val_speakers` speakers "
                   "drawn (seeded) from each fold's training speakers")
def file_folds(manifest: Manifest, file: str, val_speakers: int = 1, seed: int = 0) -> list[Fold]:
    """Published speaker-independent folds (HiCMAE, EmoBox) as they were committed; refused when the file's
    folds share a speaker between train and test in this manifest."""
    data = read_fold_file(file)
    speaker_of = dict(zip(manifest.table["clip_id"].astype(str), manifest.table["speaker"].astype(str),
                          strict=True))
    folds = []
    for i, (name, train, test) in enumerate(_file_fold_parts(manifest, data)):
        shared = sorted({speaker_of[c] for c in train} & {speaker_of[c] for c in test})
        if shared:
            raise LeakageError(f"{manifest.dataset} {name}: {data['path']} puts speakers {shared[:5]} in both "
                               "train and test: not speaker-independent; use it only as "
                               "`file-folds-speaker-overlapping`")
        speakers = sorted({speaker_of[c] for c in train})
        if not 0 < val_speakers < len(speakers):
            raise ValueError(f"{manifest.dataset} {name}: val_speakers={val_speakers} must be between 1 and "
                             f"{len(speakers) - 1} (the fold's training speakers, less one to train on)")
        order = np.random.default_rng([seed, i]).permutation(len(speakers))
        val = {speakers[j] for j in order[:val_speakers]}
        folds.append(Fold(name, [c for c in train if speaker_of[c] not in val],
                          [c for c in train if speaker_of[c] in val], test))
    return folds


@register_protocol("file-folds-speaker-overlapping", False,
                   "SPEAKER-OVERLAPPING published folds from a committed fold file (`file`), e.g. EmoBox's "
                   "EmoDB folds; validation: a seeded `val_fraction` of each training part's clips")
def file_folds_speaker_overlapping(manifest: Manifest, file: str, val_fraction: float = 0.1,
                                   seed: int = 0) -> list[Fold]:
    """Speaker-dependent published folds, offered only for comparison with the papers that used them."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"{manifest.dataset}: val_fraction={val_fraction} must lie strictly between 0 and 1")
    folds = []
    for i, (name, train, test) in enumerate(_file_fold_parts(manifest, read_fold_file(file))):
        order = np.random.default_rng([seed, i]).permutation(len(train))
        n_val = max(1, round(val_fraction * len(train)))
        val = {train[j] for j in order[:n_val]}
        folds.append(Fold(name, [c for c in train if c not in val], [c for c in train if c in val], test))
    return folds


def assert_disjoint(manifest: Manifest, folds: list[Fold], by_speaker: bool, val_from_train: bool = False) -> None:
    """Raise LeakageError if any clip (and, when `by_speaker`, any speaker) is in two parts of a fold.

    val_from_train: validation clips are drawn from the training speakers by design (leave-one-speaker-out with
    val=clips), so train and validation may share speakers; the test speakers must still be unseen."""
    for fold in folds:
        parts = {"train": fold.train, "val": fold.val, "test": fold.test}
        names = list(parts)
        for a_i, a in enumerate(names):
            for b in names[a_i + 1:]:
                shared = set(parts[a]) & set(parts[b])
                if shared:
                    raise LeakageError(f"{manifest.dataset} {fold.name}: clips in both {a} and {b}: "
                                       f"{sorted(shared)[:3]}")
                if by_speaker and not (val_from_train and {a, b} == {"train", "val"}):
                    shared_spk = manifest.speakers_of(parts[a]) & manifest.speakers_of(parts[b])
                    if shared_spk:
                        raise LeakageError(f"{manifest.dataset} {fold.name}: speakers in both {a} and {b}: "
                                           f"{sorted(shared_spk)}")


def assert_speaker_independent(manifest: Manifest, folds: list[Fold]) -> None:
    assert_disjoint(manifest, folds, by_speaker=True)


def make_folds(manifest: Manifest, spec: ProtocolSpec) -> list[Fold]:
    protocol = get_protocol(spec.name)
    folds = protocol.make(manifest, **spec.params)
    assert_disjoint(manifest, folds, by_speaker=protocol.speaker_independent,
                    val_from_train=validates_on_training_speakers(spec))
    return folds


FOLDS_VERSION = 2  # bump when a protocol's code makes other folds from the same inputs (2: the keyed cache)


def folds_key(manifest: Manifest, spec: ProtocolSpec) -> str:
    """What the stored folds of `spec` on `manifest` depend on, hashed: the protocol's name, every parameter as the
    protocol receives it (the card's values with the function's defaults filled in, so k, seed, the validation
    share or a changed default each make new folds), the manifest's fingerprint, and, for a file-defined protocol,
    the fold file's content (an edited file with the same path is another split). A parameter the protocol does
    not take is a TypeError here, as it would be when the folds are made."""
    import hashlib
    import inspect

    from harness.hashing import stable_hash

    bound = inspect.signature(get_protocol(spec.name).make).bind(manifest, **spec.params)
    bound.apply_defaults()
    params = {k: v for k, v in bound.arguments.items() if k != "manifest"}
    record: dict[str, Any] = {"protocol": spec.name, "params": params, "manifest": manifest.fingerprint(),
                              "version": FOLDS_VERSION}
    if "file" in params:
        record["file_sha256"] = hashlib.sha256(_fold_file_path(str(params["file"])).read_bytes()).hexdigest()
    return stable_hash(record, length=32)


def save_folds(path: Path, spec: ProtocolSpec, manifest_fingerprint: str, folds: list[Fold], key: str) -> None:
    atomic.write_json(path, {"protocol": spec.name, "params": spec.params, "manifest": manifest_fingerprint,
                             "key": key, "folds": [asdict(f) for f in folds]})


def load_or_make_folds(path: Path, manifest: Manifest, spec: ProtocolSpec) -> list[Fold]:
    """Stored folds when they were made from the same inputs (`folds_key`: protocol, its resolved parameters, the
    manifest, a fold file's content), otherwise new ones (then stored); an unreadable store is remade too. The
    stored folds are checked for leakage again on every load."""
    key = folds_key(manifest, spec)
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            folds = [Fold(**f) for f in stored["folds"]] if stored.get("key") == key else None
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            folds = None  # a truncated or foreign file: make the folds again
        if folds is not None:
            assert_disjoint(manifest, folds, by_speaker=get_protocol(spec.name).speaker_independent,
                            val_from_train=validates_on_training_speakers(spec))
            return folds
    folds = make_folds(manifest, spec)
    save_folds(path, spec, manifest.fingerprint(), folds, key)
    return folds
