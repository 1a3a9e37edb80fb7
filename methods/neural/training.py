"""The one training loop shared by every neural method, and the `NeuralMethod` base class around it.

Why one loop: the benchmark compares fusion *architectures*, so everything else (padding and masks, feature
standardisation, the early-stopping rule of `methods.neural.early_stopping`, optimiser choice, seeding, mixed
precision, best-epoch checkpoint, class weights) must be identical across them. A method only says how to build
its network (`build_network`) and, when it differs from weighted cross-entropy, its loss (`loss`).

A network receives a batch dict  {"x": {mod: [B, T, D]}, "mask": {mod: [B, T] bool, True = real frame},
"avail": {mod: [B] bool}, "y": [B]}  and returns {"logits": [B, C], optionally "embedding": [B, E]}.
A clip without a usable modality gets avail=False and one zero frame (so attention always has a key); the
network must not let that frame influence anything (it is a placeholder, never data).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from methods.base import FusionMethod
from methods.data import MultimodalData
from methods.neural.early_stopping import EarlyStopping

Batch = dict[str, Any]

# Shared hyperparameters of every neural method (a method adds its own in `defaults`).
COMMON_DEFAULTS: dict[str, Any] = {
    "optimizer": "adamw",  # adamw | adam | sgd
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "momentum": 0.9,  # SGD only
    "batch_size": 32,
    "max_epochs": 30,
    "patience": 6,  # epochs without validation gain before stopping
    "select_by": "uar",  # what "validation gain" means: uar | accuracy | loss (the best epoch is kept)
    "class_weights": False,  # inverse-frequency weights in the cross-entropy (for imbalanced corpora)
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda
    "amp": True,  # mixed precision when on a GPU (ignored on CPU)
    "grad_clip": 1.0,
    "checkpoint_dir": None,  # where the best epoch's weights are written (kept in memory either way)
    "max_len": 24,  # sequences longer than this are averaged down to it (bounded cost); None = keep all
    "modalities": None,  # restrict to these modalities (a 2-modality variant); None = the class's modalities
    "train_missing_rate": 0.0,  # modality dropout: share of training clips per batch that lose one modality
}


def resample_sequence(seq: np.ndarray, n: int) -> np.ndarray:
    """Average (or repeat) the rows of [L, D] into exactly n contiguous, near-equal segments (see
    `layers.segment_weights`, which does the same on padded batches)."""
    length = len(seq)
    k = np.arange(n)
    start = np.floor(k * length / n).astype(int)
    end = np.maximum(start + 1, np.ceil((k + 1) * length / n).astype(int))
    cumulative = np.concatenate([np.zeros((1, seq.shape[1]), np.float64), np.cumsum(seq, axis=0, dtype=np.float64)])
    return ((cumulative[end] - cumulative[start]) / (end - start)[:, None]).astype(np.float32)


@dataclass
class Standardizer:
    """Per-modality, per-dimension z-scoring fitted on the real frames of the training clips only."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @classmethod
    def fit(cls, data: MultimodalData, modalities: list[str]) -> Standardizer:
        mean, std = {}, {}
        for mod in modalities:
            frames = [s for s, ok in zip(data.sequences[mod], data.available[mod], strict=True) if ok and len(s)]
            if not frames:
                raise ValueError(f"no training clip has the {mod!r} modality")
            stacked = np.concatenate(frames, axis=0).astype(np.float64)
            mean[mod] = stacked.mean(axis=0).astype(np.float32)
            spread = stacked.std(axis=0)
            std[mod] = np.where(spread > 1e-6, spread, 1.0).astype(np.float32)
        return cls(mean, std)


@dataclass
class Tensors:
    """A whole split as padded tensors (padding to the split's longest clip; masks say what is real)."""

    x: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]
    avail: dict[str, torch.Tensor]
    y: torch.Tensor | None
    missing: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.avail.values())))

    def batch(self, index: torch.Tensor, device: torch.device) -> Batch:
        return {
            "x": {m: t[index].to(device) for m, t in self.x.items()},
            "mask": {m: t[index].to(device) for m, t in self.mask.items()},
            "avail": {m: t[index].to(device) for m, t in self.avail.items()},
            "y": None if self.y is None else self.y[index].to(device),
        }


def tensorize(data: MultimodalData, modalities: list[str], standardizer: Standardizer,
              max_len: int | None = None, fixed_len: dict[str, int] | None = None,
              keep_first: tuple[str, ...] = (), max_lens: dict[str, int] | None = None) -> Tensors:
    """Standardise, bound the length (`max_len`) or fix it (`fixed_len[mod]`), pad, and build the masks.

    For modalities in `keep_first` the first frame (a text encoder's CLS token) is never averaged with others:
    only the frames after it are resampled. `max_lens[mod]` bounds one modality's length instead of `max_len`."""
    fixed_len, max_lens = fixed_len or {}, max_lens or {}
    x, mask, avail, missing = {}, {}, {}, {}
    for mod in modalities:
        dim = len(standardizer.mean[mod])
        rows: list[np.ndarray] = []
        ok = np.zeros(len(data), dtype=bool)
        for i, (seq, present) in enumerate(zip(data.sequences[mod], data.available[mod], strict=True)):
            seq = np.asarray(seq, dtype=np.float32).reshape(-1, dim) if present else np.zeros((0, dim), np.float32)
            if len(seq) == 0:  # unavailable: one placeholder frame, flagged by avail=False
                rows.append(np.zeros((1, dim), np.float32))
                continue
            if not np.isfinite(seq).all():
                raise ValueError(f"clip {data.ids[i]!r}: {mod} features contain NaN or infinite values")
            ok[i] = True
            seq = (seq - standardizer.mean[mod]) / standardizer.std[mod]
            bound = max_lens.get(mod) or max_len
            target = fixed_len.get(mod) or (bound if bound and len(seq) > bound else None)
            if target and mod in keep_first and len(seq) > 1:
                seq = np.concatenate([seq[:1], resample_sequence(seq[1:], max(1, target - 1))])
            elif target:
                seq = resample_sequence(seq, target)
            rows.append(seq)
        width = max(len(r) for r in rows)
        padded = np.zeros((len(rows), width, dim), np.float32)
        real = np.zeros((len(rows), width), dtype=bool)
        for i, r in enumerate(rows):
            padded[i, : len(r)] = r
            real[i, : len(r)] = True
        x[mod], mask[mod], avail[mod] = torch.from_numpy(padded), torch.from_numpy(real), torch.from_numpy(ok)
        missing[mod] = int((~ok).sum())
    y = None if data.labels is None else torch.as_tensor(np.asarray(data.labels), dtype=torch.long)
    return Tensors(x, mask, avail, y, missing)


@dataclass
class TrainSettings:
    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    batch_size: int
    max_epochs: int
    patience: int
    seed: int
    device: str
    amp: bool
    grad_clip: float
    checkpoint_dir: str | None
    train_missing_rate: float = 0.0
    select_by: str = "uar"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainSettings:
        return cls(**{k: params[k] for k in cls.__dataclass_fields__})


@dataclass
class TrainResult:
    epochs_run: int
    best_epoch: int
    best_uar: float
    best_loss: float
    seconds: float


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(parameters, s: TrainSettings) -> torch.optim.Optimizer:
    if s.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=s.lr, weight_decay=s.weight_decay)
    if s.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=s.lr, weight_decay=s.weight_decay)
    if s.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    raise ValueError(f"unknown optimizer {s.optimizer!r}; choose adamw, adam or sgd")


def unweighted_average_recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """UAR: the mean of per-class recalls over the classes present in y_true (balanced accuracy)."""
    recalls = [float(np.mean(y_pred[y_true == c] == c)) for c in np.unique(y_true)]
    return float(np.mean(recalls)) if recalls else 0.0


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return torch.autocast(device_type=device.type, enabled=False)


@torch.no_grad()
def predict_logits(network: nn.Module, tensors: Tensors, batch_size: int, device: torch.device,
                   amp: bool = False) -> torch.Tensor:
    network.eval()
    chunks = []
    for start in range(0, len(tensors), batch_size):
        index = torch.arange(start, min(start + batch_size, len(tensors)))
        with _autocast(device, amp):
            chunks.append(network(tensors.batch(index, device))["logits"].float().cpu())
    return torch.cat(chunks)


EpochCallback = Callable[[int, dict[str, float]], None]


def modality_dropout(batch: Batch, rate: float, generator: torch.Generator) -> Batch:
    """A training batch in which each clip, with probability `rate`, loses one of its available modalities
    (chosen uniformly, seeded by `generator`), exactly as a missing modality looks at test time: avail=False,
    features zeroed, one placeholder frame. A clip never loses its last available modality.

    Why: a fusion network trained only on complete clips has never seen the availability mask switch off, so it
    may collapse when a modality is missing at test time; dropping modalities during training (ModDrop,
    Neverova et al. 2016) teaches it to fall back on what remains. Only training batches are changed."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"train_missing_rate must be in [0, 1], got {rate}")
    modalities = list(batch["avail"])
    if rate <= 0 or len(modalities) < 2:
        return batch
    avail = torch.stack([batch["avail"][m].cpu() for m in modalities], dim=1)
    n = avail.shape[0]
    hit = torch.rand(n, generator=generator) < rate
    which = torch.randint(len(modalities), (n,), generator=generator)
    drop = torch.zeros_like(avail)
    drop[torch.arange(n), which] = hit
    drop &= avail
    drop &= (avail & ~drop).any(dim=1, keepdim=True)  # keep the clip's last modality
    if not drop.any():
        return batch
    out = {**batch, "x": dict(batch["x"]), "mask": dict(batch["mask"]), "avail": dict(batch["avail"])}
    for k, m in enumerate(modalities):
        gone = drop[:, k].to(batch["avail"][m].device)
        if not gone.any():
            continue
        out["avail"][m] = batch["avail"][m] & ~gone
        out["x"][m] = batch["x"][m].masked_fill(gone[:, None, None], 0.0)
        placeholder = torch.zeros_like(batch["mask"][m])
        placeholder[:, 0] = True
        out["mask"][m] = torch.where(gone[:, None], placeholder, batch["mask"][m])
    return out


def train_network(network: nn.Module, train: Tensors, val: Tensors | None,
                  loss_fn: Callable[[dict[str, torch.Tensor], Batch], torch.Tensor], s: TrainSettings,
                  on_epoch: EpochCallback | None = None) -> TrainResult:
    """Mini-batch training stopped by the shared rule (`EarlyStopping`: `select_by` of the validation split,
    ties broken by validation cross-entropy, `patience` epochs without gain).

    The best epoch's weights are restored at the end (and written to `checkpoint_dir` when given). Without a
    validation split the training split is scored instead, so `fit(train)` alone still works. `on_epoch(epoch,
    {"val_uar", "val_loss"})` is called after every epoch (1-based), so a search scheduler can stop a bad
    configuration early (the harness reports it to Ray Tune; a notebook user can print it).
    """
    began = time.perf_counter()
    device = resolve_device(s.device)
    network.to(device)
    optimizer = make_optimizer(network.parameters(), s)
    use_scaler = device.type == "cuda" and s.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    generator = torch.Generator().manual_seed(s.seed)
    scored = val if val is not None and len(val) else train
    stopping = EarlyStopping(s.patience, s.select_by)
    best_state, epoch = copy.deepcopy(network.state_dict()), -1
    for epoch in range(s.max_epochs):
        network.train()
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), s.batch_size):
            index = order[start:start + s.batch_size]
            if len(index) < 2 <= len(train):  # a lone leftover clip adds noise, not signal (and breaks mining)
                continue
            batch = train.batch(index, device)
            if s.train_missing_rate > 0:
                batch = modality_dropout(batch, s.train_missing_rate, generator)
            with _autocast(device, s.amp):
                loss = loss_fn(network(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if s.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(network.parameters(), s.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        logits = predict_logits(network, scored, 256, device, s.amp)
        y = scored.y.numpy()
        uar = unweighted_average_recall(y, logits.argmax(1).numpy())
        val_loss = float(nn.functional.cross_entropy(logits, scored.y))
        if on_epoch is not None:
            on_epoch(epoch + 1, {"val_uar": uar, "val_loss": val_loss})
        accuracy = float((logits.argmax(1) == scored.y).float().mean())
        if stopping.update(epoch, uar=uar, accuracy=accuracy, loss=val_loss):
            best_state = copy.deepcopy(network.state_dict())
            if s.checkpoint_dir:
                path = Path(s.checkpoint_dir)
                path.mkdir(parents=True, exist_ok=True)
                torch.save({"state_dict": best_state, "epoch": epoch, "val_uar": uar}, path / "best.pt")
        elif stopping.should_stop:
            break
    network.load_state_dict(best_state)
    return TrainResult(epoch + 1, stopping.best_epoch + 1, stopping.best_uar, stopping.best_loss,
                       time.perf_counter() - began)


class NeuralMethod(FusionMethod):
    """Base of the neural methods: data preparation, the shared loop, prediction.

    Subclasses set `defaults` (their own hyperparameters, sized for the benchmark budget), `paper` (the
    overrides that reproduce the paper's setting; `cls(**cls.paper)`), and implement `build_network`.
    """

    input_kind = "sequence"
    trains_by_epoch = True
    family = "neural"
    defaults: ClassVar[dict[str, Any]] = {}
    paper: ClassVar[dict[str, Any]] = {}
    min_modalities: ClassVar[int] = 2

    # Called after every training epoch (see `train_network`); set by whoever drives the fit, never a
    # hyperparameter (it is not logged and does not change the result).
    epoch_callback: EpochCallback | None = None

    @classmethod
    def declared_defaults(cls, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The shared training loop's options, then the class's own (the base class rejects anything else)."""
        return {**COMMON_DEFAULTS, **cls.defaults}

    # --- to override -------------------------------------------------------------------------------------
    def build_network(self, dims: dict[str, int], n_classes: int) -> nn.Module:
        raise NotImplementedError

    def fixed_lengths(self) -> dict[str, int]:
        """Modalities whose sequences are resampled to a fixed length (e.g. 50 face frames)."""
        return {}

    def keep_first_frame(self) -> tuple[str, ...]:
        """Modalities whose first frame is a CLS token that length bounding must leave untouched."""
        return ()

    def max_lengths(self) -> dict[str, int]:
        """Per-modality length bounds that replace `max_len` for those modalities (e.g. a paper's table)."""
        return {}

    def loss(self, out: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        return nn.functional.cross_entropy(out["logits"].float(), batch["y"], weight=self._weight)

    # --- shared -------------------------------------------------------------------------------------------
    def resolve_modalities(self, data: MultimodalData) -> list[str]:
        wanted = list(self.params["modalities"] or self.modalities)
        present = [m for m in wanted if m in data.sequences]
        if len(present) < self.min_modalities:
            raise ValueError(f"{type(self).__name__} needs at least {self.min_modalities} of {wanted} as "
                             f"sequences; the data offers {sorted(data.sequences)}")
        return present

    def _tensors(self, data: MultimodalData) -> Tensors:
        return tensorize(data, self.modalities_, self.standardizer_, self.params["max_len"], self.fixed_lengths(),
                         self.keep_first_frame(), self.max_lengths())

    def fit(self, train: MultimodalData, val: MultimodalData | None = None) -> NeuralMethod:
        if train.labels is None:
            raise ValueError("fit needs labelled training data")
        self.modalities_ = self.resolve_modalities(train)
        self.classes_ = list(train.classes)
        self.standardizer_ = Standardizer.fit(train, self.modalities_)
        train_t = self._tensors(train)
        val_t = self._tensors(val) if val is not None and val.labels is not None and len(val) else None
        settings = TrainSettings.from_params(self.params)
        self.device_ = resolve_device(settings.device)
        counts = np.bincount(train.labels, minlength=train.n_classes).astype(np.float64)
        weight = len(train.labels) / (train.n_classes * np.maximum(counts, 1.0))
        self._weight = (torch.as_tensor(weight, dtype=torch.float32, device=self.device_)
                        if self.params["class_weights"] else None)
        torch.manual_seed(int(self.params["seed"]))
        dims = {m: int(train_t.x[m].shape[-1]) for m in self.modalities_}
        self.network_ = self.build_network(dims, train.n_classes)
        result = train_network(self.network_, train_t, val_t, self.loss, settings, self.epoch_callback)
        self.notes_ = {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                       "best_val_uar": result.best_uar, "fit_seconds": round(result.seconds, 3),
                       "n_parameters": sum(p.numel() for p in self.network_.parameters())}
        for mod, n in train_t.missing.items():
            self.notes_[f"train_missing_{mod}"] = n
        return self

    def predict_proba(self, data: MultimodalData) -> np.ndarray:
        tensors = self._tensors(data)
        logits = predict_logits(self.network_, tensors, 256, self.device_, bool(self.params["amp"]))
        return torch.softmax(logits, dim=1).numpy()
