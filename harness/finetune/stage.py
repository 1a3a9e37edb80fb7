"""Stage 1 of a two-stage run: per fold, fine-tune each chosen modality's encoder on the fold's training part, then
store every clip's features from the fine-tuned encoder; stage 2 (the ordinary search) reads them per fold.

Why per fold: an encoder tuned on clips that are another fold's test part would leak those labels into that fold's
features, so each fold trains its own copy from the pretrained weights, on its training part only, stops on its
validation part (the shared rule of `methods.neural.early_stopping`: `select_by`, UAR by default, ties broken by
validation cross-entropy, `patience` epochs without gain; the best epoch's weights restored), and then re-encodes
all clips (test included) with that copy.

Store layout: one atomic shard per (modality, fold) in the feature store, under
`<dataset>/<extractor>+finetuned/<fold>-<hash>`; the hash covers the frozen extractor's cache key (corpus,
options, weights), the fold's exact membership, the stage-1 options and the seed, so a stored shard is reused on
the next run exactly when nothing that produced it changed. Folds run as Ray tasks, one GPU each when the cluster
has GPUs, else one CPU.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness import metrics
from harness.config import FINETUNE_MODALITIES, FinetuneOptions, Settings
from harness.features.base import ClipInput, ExtractorRef, extractor_names
from harness.features.store import FeatureStore
from harness.hashing import stable_hash
from harness.manifest import Manifest
from harness.prepare import PreparedDataset, aligned
from harness.protocols import Fold
from methods import MultimodalData
from methods.neural.early_stopping import EarlyStopping

SUFFIX = "+finetuned"
VERSION = 2  # bump when stage 1's computation changes, to invalidate stored shards (2: the shared stopping rule)


class FinetuneError(ValueError):
    """A two-stage run that cannot start or finish; one line naming the modality, extractor or fold."""


def run_key(base_key: str, options: FinetuneOptions, seed: int) -> str:
    """What identifies one stage-1 setting of one extractor: shown in the feature tag `<extractor>+finetuned:<key>`."""
    return stable_hash({"extractor": base_key, "options": asdict(options), "seed": seed, "version": VERSION})


def effective_options(options: FinetuneOptions, modality: str, turns: int) -> FinetuneOptions:
    """The options as they act on one modality's features, for its key: what cannot change them is reset (the
    audio crop for text, the context for audio, the modality list for both; `turns`: the context the corpus
    allows), so changing the text context does not retrain the speech encoder, nor reuse differ in name only.
    A modality's own options (`per_modality`, e.g. Babaali §3.2's BERT lr 2e-5) replace the shared ones first."""
    from dataclasses import replace

    options = options.for_modality(modality)
    if modality == "text":
        return replace(options, context_turns=turns, max_seconds=FinetuneOptions.max_seconds, modalities=None)
    return replace(options, context_turns=0, modalities=None)


def fold_entry_key(key: str, fold: Fold) -> str:
    """`<fold>-<hash>`: the run key and the fold's exact train/val/test membership."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", fold.name)
    return f"{safe}-{stable_hash({'run': key, 'fold': asdict(fold)})}"


@dataclass
class FoldOutcome:
    """What stage 1 did for one (modality, fold); `train_loss`/`val_uar`/`val_loss` per epoch (empty when
    reused)."""

    modality: str
    fold: str
    entry: str
    reused: bool
    train_loss: list[float] = field(default_factory=list)
    val_uar: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    failures: int = 0


def finetune_fold(manifest: Manifest, fold: Fold, extractor: ExtractorRef, modality: str, options: FinetuneOptions,
                  store_root: str, seed: int, history: dict[str, list[str]], base_key: str) -> FoldOutcome:
    """Fine-tune a fresh copy of `extractor`'s network on `fold`'s training part and store all clips' features.

    Reuses the fold's stored shard when it holds every clip. `history` maps clip id -> previous utterances (text).
    """
    import torch

    from harness.features.decode import decode_or_error, error_text, media_rows
    from harness.finetune.encoders import build_encoder

    started = time.perf_counter()
    store = FeatureStore(store_root)
    name = extractor.name + SUFFIX
    entry = store.entry(manifest.dataset, name, fold_entry_key(run_key(base_key, options, seed), fold))
    if set(manifest.ids) <= store.processed_ids(entry):
        return FoldOutcome(modality, fold.name, entry, reused=True)
    built = extractor.build()
    built.check_weights()
    built.cache = store  # intermediate results (face crops) live next to the features, as in extraction
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = build_encoder(modality, built, len(manifest.classes), device, options)
    decoded: dict[str, ClipInput] = {}
    items: dict[str, Any] = {}
    failures: list[tuple[str, str, str]] = []
    for row in media_rows(manifest, set(manifest.ids)).to_dict("records"):
        clip = decode_or_error(row, built)
        if isinstance(clip, str):
            failures.append((str(row["clip_id"]), "decode", clip))
            continue
        try:  # e.g. no face in any frame: the clip's failure, as in extraction
            items[clip.clip_id] = encoder.item(clip, history.get(clip.clip_id, []))
        except Exception as error:
            failures.append((clip.clip_id, "extract", error_text(error)))
            continue
        encoder.release(clip)
        decoded[clip.clip_id] = clip
    label = {str(c): manifest.classes.index(y) for c, y in zip(manifest.table["clip_id"], manifest.table["label"],
                                                              strict=True)}
    train = [c for c in fold.train if c in items]
    val = [c for c in fold.val if c in items]
    if not train:
        raise FinetuneError(f"{manifest.dataset}/{fold.name}: no {modality} clip of the training part decoded")
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=options.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    outcome = FoldOutcome(modality, fold.name, entry, reused=False)
    best, stopping = None, EarlyStopping(options.patience, options.select_by)
    for epoch in range(1, options.epochs + 1):
        encoder.train(True)
        order = rng.permutation(len(train))
        losses = []
        for start in range(0, len(order), options.batch_size):
            batch = [train[i] for i in order[start:start + options.batch_size]]
            target = torch.tensor([label[c] for c in batch], device=device)
            loss = loss_fn(encoder.logits([items[c] for c in batch], True, rng), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()) * len(batch))
        outcome.train_loss.append(sum(losses) / len(train))
        if not val:  # no validation part: train every epoch, keep the last weights
            outcome.best_epoch = epoch
            continue
        encoder.train(False)
        with torch.no_grad():
            logits = torch.cat([encoder.logits([items[c] for c in val[s:s + options.batch_size]], False, rng)
                                .float().cpu() for s in range(0, len(val), options.batch_size)])
        truth = np.array([label[c] for c in val])
        predicted = logits.argmax(-1).numpy()
        uar = metrics.uar(truth, predicted)
        val_loss = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(truth)))
        outcome.val_uar.append(uar)
        outcome.val_loss.append(val_loss)
        if stopping.update(epoch, uar=uar, accuracy=float(np.mean(predicted == truth)), loss=val_loss):
            best, outcome.best_epoch = encoder.state(), epoch
        elif stopping.should_stop:
            break
    if best is not None:
        encoder.load_state(best)
    encoder.train(False)
    ids = list(decoded)
    results = encoder.encode([decoded[c] for c in ids], [items[c] for c in ids])
    kept_ids, features = [], []
    for clip_id, result in zip(ids, results, strict=True):
        if isinstance(result, Exception):
            failures.append((clip_id, "extract", error_text(result)))
        else:
            kept_ids.append(clip_id)
            features.append(result)
    store.write_spec(entry, {"dataset": manifest.dataset, "extractor": name, "config": built.config,
                             "version": VERSION, "weights": built.weights_identity(),
                             "manifest": manifest.fingerprint(),
                             "fold": fold.name, "finetune": asdict(options), "seed": seed, "base_key": base_key,
                             "best_epoch": outcome.best_epoch, "train_loss": outcome.train_loss,
                             "val_uar": outcome.val_uar, "val_loss": outcome.val_loss})
    store.write_shard(entry, kept_ids, features, failures)  # one shard: the fold's features appear all at once
    outcome.failures, outcome.seconds = len(failures), time.perf_counter() - started
    return outcome


# ---- the pipeline's side ------------------------------------------------------------------------------------
def finetune_modalities(settings: Settings, extractors: dict[str, ExtractorRef], present: list[str],
                        needed: set[str] | None) -> dict[str, str]:
    """modality -> extractor name that stage 1 fine-tunes for one dataset (`extractors`: the plan's,
    `DatasetPlan.extractors`).

    Asked for (`finetune_options.modalities`): each must be present and trainable, else a FinetuneError. Default:
    the modalities the planned methods read (all present ones for fusion methods without a fixed set) that stage 1
    can train; the others keep their frozen features (logged by the caller).
    """
    from harness.finetune.encoders import trainable_reason

    asked = settings.finetune_options.modalities
    candidates = list(asked) if asked else [m for m in present if m in FINETUNE_MODALITIES
                                            and (needed is None or m in needed)]
    chosen = {}
    for modality in candidates:
        ref = extractors.get(modality)
        name = ref.name if ref is not None else None
        reason = ("no extractor is configured" if name is None else "" if name in extractor_names()
                  else f"{name!r} names imported features, which have no network to train")
        if not reason and modality not in present:
            reason = "the dataset lacks it"
        if not reason:
            reason = trainable_reason(ref.build())
        if reason and asked:
            raise FinetuneError(f"finetune: cannot fine-tune {modality}: {reason}")
        if not reason:
            chosen[modality] = name
    return chosen


def run_folds(tasks: list[dict[str, Any]]) -> list[FoldOutcome]:
    """Every (modality, fold) as a Ray task: a GPU each when the cluster has GPUs, else a CPU."""
    import ray

    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=1)(finetune_fold)
    return ray.get([remote.remote(**task) for task in tasks])


def prepare_finetuned(settings: Settings, prepared: PreparedDataset, needed: set[str] | None, need_sequences: bool,
                      say: Any = print) -> PreparedDataset:
    """Stage 1 for one prepared dataset: fine-tune, store or reuse every (modality, fold), and return a new prepared
    dataset whose `fold_data` holds the per-fold data for stage 2 and whose `feature_keys` name
    `<extractor>+finetuned:<key>` for the fine-tuned modalities, so the result's tags, setting and fingerprint name
    the stage-1 setting. `prepared` itself unchanged when nothing is fine-tuned (the run then uses the frozen
    features, and says so)."""
    from dataclasses import replace

    from harness.finetune.context import dialogue_history, dialogue_layout
    from harness.perfold import PerFoldData

    spec, manifest, base = prepared.spec, prepared.manifest, prepared.data
    present = [m for m in base.modalities if m in prepared.feature_keys]
    chosen = finetune_modalities(settings, prepared.extractors, present, needed)  # the plan's extractors
    frozen = [m for m in present if m not in chosen and (needed is None or m in needed)]
    if frozen:
        say(f"[finetune] {spec.name}: {', '.join(frozen)} keep frozen features (no trainable extractor)")
    if not chosen:
        say(f"[finetune] {spec.name}: nothing to fine-tune; the run uses frozen features")
        return prepared
    options, fingerprint = settings.finetune_options, manifest.fingerprint()
    turns = options.context_turns if dialogue_layout(manifest.table) is not None else 0
    if options.context_turns and not turns:
        say(f"[finetune] {spec.name}: no dialogues in the manifest; text has no context")
    history = dialogue_history(manifest, turns)
    tasks, keys = [], {}
    for modality, name in chosen.items():
        ref = prepared.extractors[modality]
        base_key, effective = ref.cache_key(fingerprint), effective_options(options, modality, turns)
        keys[modality] = f"{name}{SUFFIX}:{run_key(base_key, effective, settings.seed)}"
        for fold in prepared.folds:
            tasks.append(dict(manifest=manifest, fold=fold, extractor=ref, modality=modality, options=effective,
                              store_root=settings.feature_store_uri(), seed=settings.seed,
                              history=history if modality == "text" else {}, base_key=base_key))
    say(f"[finetune] {spec.name}: stage 1 for {', '.join(f'{m}={n}' for m, n in chosen.items())} on "
        f"{len(prepared.folds)} folds (context {turns} turns)")
    outcomes = run_folds(tasks)
    store = FeatureStore(settings.feature_store_uri())
    folds: dict[str, MultimodalData] = {}
    for fold in prepared.folds:
        pooled, sequences, available = dict(base.pooled), dict(base.sequences), dict(base.available)
        for outcome in (o for o in outcomes if o.fold == fold.name):
            matrix, mask, seqs = aligned(store.load(outcome.entry), base.ids, need_sequences)
            pooled[outcome.modality], available[outcome.modality] = matrix, mask
            if seqs is not None:
                sequences[outcome.modality] = seqs
            say(f"[finetune] {spec.name}/{fold.name}/{outcome.modality}: "
                + ("stored shard reused" if outcome.reused else
                   f"best epoch {outcome.best_epoch}, train loss {' '.join(f'{x:.3f}' for x in outcome.train_loss)}"
                   f", val UAR {' '.join(f'{x:.3f}' for x in outcome.val_uar) or '-'}, {outcome.seconds:.0f}s"))
        if settings.speaker_norm:
            from harness.normalize import normalise_by_speaker

            speakers = manifest.table["speaker"].astype(str).to_numpy()
            tuned = list(chosen)
            normed_p, normed_s = normalise_by_speaker({m: pooled[m] for m in tuned},
                                                      {m: sequences[m] for m in tuned if m in sequences},
                                                      {m: available[m] for m in tuned}, speakers)
            pooled.update(normed_p)
            sequences.update(normed_s)
        folds[fold.name] = MultimodalData(ids=list(base.ids), classes=list(base.classes), pooled=pooled,
                                          sequences=sequences, available=available, labels=base.labels,
                                          groups=dict(base.groups))
    return replace(prepared, feature_keys={**prepared.feature_keys, **keys}, fold_data=PerFoldData(folds))


def check_finetune(settings: Settings, datasets: list[Any]) -> None:
    """Before any work: every modality `finetune_options.modalities` asks for has a trainable extractor on every
    planned dataset whose card offers it (FinetuneError naming the modality and what to choose instead).
    `datasets`: the run's `prepare.DatasetPlan`s, whose `extractors` say which extractor each modality uses."""
    for plan in datasets:
        offered = list(plan.spec.modalities)
        asked = [m for m in settings.finetune_options.modalities or () if m in offered]
        if asked:
            finetune_modalities(settings.with_(finetune_options={**asdict(settings.finetune_options),
                                                                 "modalities": tuple(asked)}),
                                plan.extractors, offered, None)
