"""The end-to-end training loop, run by every Ray Train worker, and `run_e2e`, which starts or resumes it.

Per epoch every worker trains on its DistributedSampler shard (gradients all-reduced by DDP), then scores the
whole validation split; rank 0's score is broadcast so all workers take the same early-stopping decision (they
must call `ray.train.report` the same number of times). Rank 0 writes the checkpoint: the latest weights,
optimiser and counters (for resume) plus the best epoch's weights so far and the early-stopping state
(`methods.neural.early_stopping.EarlyStopping`, the rule every training loop shares: `select_by` of the
validation split, ties broken by validation cross-entropy, `patience` epochs without gain), so the test part is
scored, and its epoch reported, from the best validation epoch, not the last one.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.e2e.clips import ClipSettings
from harness.metrics import uar as unweighted_average_recall
from methods.neural.early_stopping import EarlyStopping

STATE_FILE = "state.pt"


@dataclass
class E2EConfig:
    """Optimiser and head settings of Mocanu et al. as docs/methods.md cites them (Adam, lr 1e-4, batch 16,
    patience 20, H = 8, frame augmentation; m' = 512 with the ResNet backbones). The defaults (`backbone="tiny"`,
    m_prime=32, log-mel, whole frames) are the CPU smoke setting, not the paper's front end. `select_by` is what
    the best epoch is chosen by (uar | accuracy | loss): the harness's UAR by default, the method's paper preset's
    value (Mocanu §4.2: accuracy) under `harness e2e --preset paper`."""

    backbone: str = "tiny"  # tiny | resnet (r3d_18 + resnet18, not the paper's) | r3d_101 (3-D ResNet-101)
    video_weights: str | None = None
    audio_weights: str | None = None
    epochs: int = 1
    batch_size: int = 16
    lr: float = 1e-4
    patience: int = 20
    select_by: str = "uar"
    m_prime: int = 32
    heads: int = 8
    hidden: int = 64
    dropout: float = 0.1
    use_vs: bool = True
    use_vc: bool = True
    use_vt: bool = True
    use_at: bool = True
    fusion: str = "cross"
    loss: str = "ce+metric"  # ce | ce+metric | metric (the paper: Eq. 16 alone shapes the embedding)
    metric_loss: str = "emotion"  # emotion (Eq. 16, the card's polarity map) | triplet (Eq. 13, Table 3's baseline)
    metric_weight: float = 1.0
    alpha: float = 0.2
    beta: float = 0.2
    augment: bool = True
    amp: bool = True
    seed: int = 0
    clips: ClipSettings = field(default_factory=ClipSettings)

    def head_params(self) -> dict[str, Any]:
        return {"m_prime": self.m_prime, "heads": self.heads, "hidden": self.hidden, "dropout": self.dropout,
                "use_vs": self.use_vs, "use_vc": self.use_vc, "use_vt": self.use_vt, "use_at": self.use_at,
                "fusion": self.fusion, "missing_modalities": False}


def augment_frames(video, generator):
    """Random resized crop (85-100 % of the side), horizontal flip and brightness, one draw per clip (the same
    for all its frames, so motion is preserved). video: float [B, N, k, S, S, 3] in 0..255."""
    import torch

    b, size = video.shape[0], video.shape[3]
    out = []
    for i in range(b):
        clip = video[i]
        crop = int(round(size * float(0.85 + 0.15 * torch.rand(1, generator=generator))))
        top, left = (int(torch.randint(0, size - crop + 1, (1,), generator=generator)) for _ in range(2))
        clip = clip[:, :, top:top + crop, left:left + crop, :]
        frames = clip.flatten(0, 1).permute(0, 3, 1, 2)
        frames = torch.nn.functional.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        clip = frames.permute(0, 2, 3, 1).reshape(video.shape[1:])
        if bool(torch.rand(1, generator=generator) < 0.5):
            clip = clip.flip(dims=[3])
        clip = clip * float(0.8 + 0.4 * torch.rand(1, generator=generator))
        out.append(clip.clamp(0, 255))
    return torch.stack(out)


def e2e_loss(out: dict[str, Any], y: Any, cfg: E2EConfig, class_polarity: Any) -> Any:
    """CE, CE + metric_weight x metric, or (loss="metric", the paper) metric + CE where the CE reaches only the
    classifier (the model detaches its input), so the classifier is trained and the embedding is shaped by the
    metric loss alone."""
    import torch

    from methods.neural.losses import emotion_metric_loss

    ce = torch.nn.functional.cross_entropy(out["logits"].float(), y)
    if cfg.loss == "ce":
        return ce
    if cfg.loss not in ("metric", "ce+metric"):
        raise ValueError(f"loss must be 'ce', 'metric' or 'ce+metric', got {cfg.loss!r}")
    metric = emotion_metric_loss(torch.nn.functional.normalize(out["embedding"].float(), dim=1), y, class_polarity,
                                 cfg.alpha, cfg.beta)
    return ce + (1.0 if cfg.loss == "metric" else cfg.metric_weight) * metric


def score_checkpoint(checkpoint: str | Path, cache: Path, ids: list[str], use_best: bool = True,
                     batch_size: int = 32) -> dict[str, Any]:
    """Class probabilities of the clips `ids` from a run's checkpoint (the best epoch's weights by default), on
    the CPU in the driver: how the end-to-end mode scores its test fold once, after training.

    "epoch" is the epoch whose weights were used: the best validation epoch with `use_best` (the checkpoint is
    the run's last one, so its own "epoch" is the last epoch trained; -1 for a checkpoint written before the best
    epoch was recorded), else the last epoch. "last_epoch" is the last epoch trained."""
    import torch

    from harness.e2e.models import EndToEndAV, build_backbones

    state = torch.load(Path(checkpoint) / STATE_FILE, map_location="cpu", weights_only=False)
    raw = dict(state["config"])
    cfg = E2EConfig(**{**raw, "clips": ClipSettings(**raw["clips"]), "video_weights": None, "audio_weights": None})
    video_net, audio_net = build_backbones(cfg.backbone)
    model = EndToEndAV(video_net, audio_net, len(state["classes"]), cfg.clips.n_snippets,
                       cfg.clips.frames_per_snippet, cfg.clips.frame_size, cfg.head_params())
    best = use_best and bool(state.get("best_model"))
    model.load_state_dict(state["best_model"] if best else state["model"])
    model.eval()
    arrays = np.load(cache)
    position = {clip_id: i for i, clip_id in enumerate(arrays["ids"].tolist())}
    index = np.array([position[i] for i in ids])
    video, audio = torch.from_numpy(arrays["video"]).float(), torch.from_numpy(arrays["audio"])
    with torch.no_grad():
        logits = torch.cat([model(video[index[i:i + batch_size]], audio[index[i:i + batch_size]])["logits"]
                            for i in range(0, len(index), batch_size)])
    return {"ids": list(ids), "classes": list(state["classes"]), "labels": arrays["labels"][index],
            "probabilities": torch.softmax(logits.float(), dim=1).numpy(),
            "epoch": int(state.get("best_epoch", -1) if best else state["epoch"]), "last_epoch": int(state["epoch"])}


def evaluate_split(checkpoint: str | Path, cache: Path, ids: list[str], classes: list[str]
                   ) -> tuple[Any, dict[str, Any]]:
    """Clips `ids` scored from a run's best-epoch weights: (harness.metrics Scores, `score_checkpoint`'s dict,
    whose probabilities and labels the MLflow predictions are written from)."""
    from harness.metrics import score

    scored = score_checkpoint(checkpoint, cache, list(ids))
    if list(scored["classes"]) != list(classes):
        raise ValueError(f"{checkpoint}: trained on classes {scored['classes']}, the manifest has {classes}")
    predicted = scored["probabilities"].argmax(axis=1)
    return score(np.asarray(scored["labels"]), predicted, list(classes)), scored


def score_test_fold(checkpoint: str | Path, cache: Path, test_ids: list[str], classes: list[str]
                    ) -> tuple[Any, int]:
    """A fold's test part scored once from its run's best-epoch weights: (harness.metrics Scores, best epoch)."""
    scores, scored = evaluate_split(checkpoint, cache, test_ids, classes)
    return scores, scored["epoch"]


def stopping_state(state: dict[str, Any], cfg: E2EConfig) -> EarlyStopping:
    """The early-stopping rule as a resume checkpoint left it, continued with this run's patience.

    A checkpoint written before the shared rule (keys `best_uar` / `since_best`, no `early_stopping`) chose its
    best epoch by UAR without the loss tie-break: it continues under `select_by="uar"` with the tie-break's loss
    unknown (so the next epoch with an equal UAR and any finite loss becomes the best), and is refused under
    another `select_by` (its best score is a UAR, not comparable with an accuracy or a loss). A checkpoint from
    before `best_epoch` was recorded has best epoch -1 (unknown), never the last one."""
    from methods.neural.early_stopping import EarlyStoppingStateError

    if "early_stopping" in state:
        return EarlyStopping.from_state(state["early_stopping"], cfg.patience, cfg.select_by)
    if cfg.select_by != "uar":
        raise EarlyStoppingStateError(
            f"this checkpoint predates the shared early-stopping rule and chose its best epoch by validation UAR; "
            f"it cannot continue with select_by={cfg.select_by!r}: resume with select_by 'uar' or start afresh")
    return EarlyStopping(cfg.patience, "uar", best_score=float(state["best_uar"]), best_uar=float(state["best_uar"]),
                         best_epoch=int(state.get("best_epoch", -1)), since_best=int(state["since_best"]))


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Runs inside each Ray Train worker."""
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from harness.e2e.models import EndToEndAV, build_backbones
    from methods.neural.losses import polarity_vector

    cfg = E2EConfig(**{**loop_config["config"], "clips": ClipSettings(**loop_config["config"]["clips"])})
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)

    arrays = np.load(loop_config["cache"])
    position = {clip_id: i for i, clip_id in enumerate(arrays["ids"].tolist())}
    train_idx = np.array([position[i] for i in loop_config["train_ids"]])
    val_idx = np.array([position[i] for i in loop_config["val_ids"]])
    video = torch.from_numpy(arrays["video"]).float()
    audio = torch.from_numpy(arrays["audio"])
    labels = torch.from_numpy(arrays["labels"]).long()
    classes = loop_config["classes"]
    # the plain triplet (Eq. 13) is the emotion loss with no related classes: every anchor's negatives are hard
    class_polarity = polarity_vector(classes, loop_config.get("polarity") if cfg.metric_loss == "emotion" else None)

    video_net, audio_net = build_backbones(cfg.backbone, cfg.video_weights, cfg.audio_weights)
    model = EndToEndAV(video_net, audio_net, len(classes), cfg.clips.n_snippets, cfg.clips.frames_per_snippet,
                       cfg.clips.frame_size, cfg.head_params(), detach_head=cfg.loss == "metric")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    stopping = EarlyStopping(cfg.patience, cfg.select_by)
    start_epoch, best_state, resumed_from, history = 0, None, -1, []
    # Ray's own checkpoint (a restarted worker group within this run) wins; else the one we were asked to resume.
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and loop_config.get("resume_from"):
        checkpoint = ray.train.Checkpoint(loop_config["resume_from"])
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"] + 1
        stopping = stopping_state(state, cfg)
        best_state, resumed_from, history = state["best_model"], state["epoch"], list(state.get("history", []))
    model = ray.train.torch.prepare_model(model)  # DDP (gloo on CPU, nccl on GPU); moves to the device
    core = model.module if hasattr(model, "module") else model

    train_set = TensorDataset(torch.from_numpy(train_idx))
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_set, batch_size=max(1, cfg.batch_size // world), sampler=sampler)
    use_amp = device.type == "cuda" and cfg.amp
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch * 10 + rank)
        losses = []
        for (index,) in loader:
            clips = video[index]
            if cfg.augment:
                clips = augment_frames(clips, generator)
            y = labels[index].to(device)
            with autocast:
                out = model(clips.to(device), audio[index].to(device))
            loss = e2e_loss(out, y, cfg, class_polarity)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad(), autocast:
            logits = torch.cat([core(video[val_idx[i:i + 32]].to(device), audio[val_idx[i:i + 32]].to(device))
                                ["logits"].float().cpu() for i in range(0, len(val_idx), 32)])
        truth = labels[val_idx]
        scores = torch.tensor([unweighted_average_recall(truth.numpy(), logits.argmax(1).numpy()),
                               float((logits.argmax(1) == truth).double().mean()),
                               float(torch.nn.functional.cross_entropy(logits, truth))], dtype=torch.float64)
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(scores, src=0)  # one decision for all workers
        val_uar, val_accuracy, val_loss = (float(x) for x in scores)
        if stopping.update(epoch, uar=val_uar, accuracy=val_accuracy, loss=val_loss):
            best_state = {k: v.detach().cpu().clone() for k, v in core.state_dict().items()}
        history.append([epoch, val_uar, val_accuracy, val_loss])
        metrics = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                   "val_uar": val_uar, "val_accuracy": val_accuracy, "val_loss": val_loss,
                   "select_by": cfg.select_by, "best_val_score": stopping.best_score,
                   "best_val_uar": stopping.best_uar, "best_epoch": stopping.best_epoch,
                   "resumed_from_epoch": resumed_from, "world_size": world}
        with tempfile.TemporaryDirectory() as folder:
            saved = None
            if rank == 0:
                torch.save({"model": core.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                            "best_epoch": stopping.best_epoch, "early_stopping": stopping.state_dict(),
                            "best_model": best_state, "history": history, "config": asdict(cfg),
                            "classes": classes}, Path(folder) / STATE_FILE)
                saved = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=saved)
        if stopping.should_stop:
            break


@dataclass
class E2EResult:
    """A finished run: its last reported metrics (the last epoch's, with `best_epoch`, `best_val_uar` and the best
    epoch's `select_by` score `best_val_score`), its last checkpoint (which holds the best epoch's weights as
    `best_model`) and its folder."""

    metrics: dict[str, Any]
    checkpoint: str | None
    path: str


def run_e2e(cache: Path, classes: list[str], train_ids: list[str], val_ids: list[str], config: E2EConfig,
            storage: Path, name: str, workers: int = 2, use_gpu: bool | None = None,
            polarity: dict[str, str] | None = None, resume_from: str | None = None) -> E2EResult:
    """Run (or resume from the checkpoint folder `resume_from`) a TorchTrainer; Ray must be initialised.

    One worker per GPU when `use_gpu`; otherwise `workers` CPU workers with the gloo backend."""
    import torch
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if use_gpu is None:
        use_gpu = torch.cuda.is_available()
    if resume_from:  # a checkpoint the rule cannot continue is refused here, in one line, not inside a worker
        check_resume(resume_from, config)
    # Ray Train v2 dropped `resume_from_checkpoint`; the path travels in the loop config and the workers load it.
    loop_config = {"config": asdict(config), "cache": str(cache), "classes": list(classes),
                   "train_ids": list(train_ids), "val_ids": list(val_ids), "polarity": polarity,
                   "resume_from": str(Path(resume_from).resolve()) if resume_from else None}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"GPU": 1} if use_gpu else {"CPU": 1}),
        run_config=RunConfig(name=name, storage_path=str(Path(storage).resolve()),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )
    result = trainer.fit()
    return E2EResult(dict(result.metrics or {}), result.checkpoint.path if result.checkpoint else None,
                     str(result.path))


def check_resume(resume_from: str | Path, config: E2EConfig) -> None:
    """Refuse a checkpoint this run cannot continue, before any worker starts: FileNotFoundError when the folder
    holds no end-to-end state, EarlyStoppingStateError when its early-stopping state was kept under another
    `select_by`; both messages start with the folder. `harness e2e` calls it for every fold before Ray starts."""
    import torch

    from methods.neural.early_stopping import EarlyStoppingStateError

    if not (Path(resume_from) / STATE_FILE).exists():
        raise FileNotFoundError(f"{resume_from}: not an end-to-end checkpoint (no {STATE_FILE})")
    # memory-mapped: only the early-stopping entries are read, not the weights (hundreds of MB for r3d_101), which
    # matters as the check runs for every fold before training and again in `run_e2e`
    state = torch.load(Path(resume_from) / STATE_FILE, map_location="cpu", weights_only=False, mmap=True)
    try:
        stopping_state(state, config)
    except EarlyStoppingStateError as error:
        raise EarlyStoppingStateError(f"{resume_from}: {error}") from None


def latest_checkpoint(run_dir: Path) -> str | None:
    """The newest checkpoint folder of a run (Ray names them checkpoint_<timestamp>), or None."""
    found = sorted(p for p in Path(run_dir).glob("checkpoint_*") if (p / STATE_FILE).exists())
    return str(found[-1]) if found else None
