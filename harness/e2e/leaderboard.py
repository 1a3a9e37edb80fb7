"""The end-to-end mode's result as one more leaderboard row: an MLflow parent run written through `harness.track`.

`harness run` results are (method, dataset) parent runs tagged by `harness.results.ResultTags` and finished from a
`MethodOutcome`; `harness report` ranks the FINISHED ones. This module gives one `harness e2e` invocation the same
shape, so the report reads it with no special case:

  method      `av-xattn-e2e-<backbone>` (e.g. `av-xattn-e2e-tiny`), family and modalities of `av-xattn`
  setting     the dataset's evaluation digest (computed exactly as `PreparedDataset.evaluation_digest`: manifest,
              labels, fold membership) and protocol, plus the end-to-end options (backbone, front end, crop, frame
              size, frames per snippet, epochs, optimiser, head, weights files...). Results are ranked together
              only within one setting, so an end-to-end result is its own section of the dataset, beside the
              `harness run` sections on the same clips and folds; two e2e runs with other options never replace
              each other.
  trial       one: the configuration trained, with each fold's validation scores from its best epoch's weights
  outcome     each fold's test part scored once from the best validation epoch's weights, predictions with the
              speaker as the bootstrap group (as `pipeline.plan_job` sets it), pooled and per-fold confusion
  artifacts   the usual ones, plus e2e.json (the command's JSON report: checkpoints, best epochs); models.pkl
              is empty, since the fold models are Ray Train checkpoints, named in e2e.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.hashing import stable_hash
from harness.results import MethodOutcome, ResultTags, TrialRecord

BASE_METHOD = "av-xattn"  # the registered feature-mode method whose family and modalities the e2e result shares
REPORT_ARTIFACT = "e2e.json"


# The registered variant each e2e loss trains (harness.claims matches `<variant>-e2e-<backbone>` to the variant).
LOSS_VARIANTS = {("ce+metric", "emotion"): BASE_METHOD, ("metric", "emotion"): "av-xattn-emotion",
                 ("metric", "triplet"): "av-xattn-triplet", ("ce", "emotion"): "av-xattn-ce"}


def method_name(backbone: str, loss: str = "ce+metric", metric_loss: str = "emotion") -> str:
    """The leaderboard name of an end-to-end result: `<variant>-e2e-<backbone>`, the variant being the feature-mode
    method with the same loss (`av-xattn-emotion`: Eq. 16 alone, the paper's; `av-xattn-triplet`: Table 3's
    triplet baseline; `av-xattn`: CE + Eq. 16), so paper claims about that variant meet it."""
    variant = LOSS_VARIANTS.get((loss, metric_loss if loss != "ce" else "emotion"))
    if variant is None:
        raise ValueError(f"no registered variant trains loss {loss!r} with metric_loss {metric_loss!r}")
    return f"{variant}-e2e-{backbone}"


def evaluation_digest(manifest: Any, folds: list[Any]) -> str:
    """What every result on a dataset is evaluated against, computed as `PreparedDataset.evaluation_digest` does
    (a test holds the two equal), so the e2e setting names the same clips, labels and folds as `harness run`."""
    labels = [manifest.classes.index(label) for label in manifest.table["label"]]
    return stable_hash({"manifest": manifest.fingerprint(), "labels": labels, "folds": [asdict(f) for f in folds]})


def _weights_name(path: str | None) -> str:
    return Path(path).name if path else "random init"


def e2e_setting(digest: str, protocol: str, config: Any, fold_names: list[str] | None = None
                ) -> tuple[dict[str, Any], str]:
    """The evaluation setting of an end-to-end result, as (record, words) like `results.evaluation_setting`.

    Everything that changes what is trained is in it (the seed is not: as for `harness run`, it is in the
    fingerprint only); weights files by file name, so moving a file keeps the setting. `fold_names`: the folds
    scored when `--fold` chose a subset (a result on one fold is not comparable with one on all of them)."""
    options = {k: v for k, v in asdict(config).items() if k not in ("seed", "video_weights", "audio_weights")}
    options["video_weights"] = _weights_name(config.video_weights)
    options["audio_weights"] = _weights_name(config.audio_weights)
    record = {"evaluation": digest, "protocol": protocol, "mode": "end-to-end", "e2e": options}
    clips = config.clips
    words = (f"{protocol}; end to end from clips: backbone {config.backbone}, {clips.front_end} audio, "
             f"{clips.crop} crops {clips.frame_size}px, {clips.frames_per_snippet} frames x {clips.n_snippets} "
             f"snippets; {config.epochs} epochs, batch {config.batch_size}, lr {config.lr:g}, m' {config.m_prime}, "
             f"loss {config.loss} ({config.metric_loss}), augment {'on' if config.augment else 'off'}, best epoch "
             f"by validation {config.select_by} (patience {config.patience}); weights video "
             f"{options['video_weights']}, audio {options['audio_weights']}")
    if fold_names is not None:
        record["folds"] = list(fold_names)
        words += f"; folds {', '.join(fold_names)} only"
    return record, words


@dataclass
class E2ERun:
    """One invocation's result: its tags and MLflow parent, and the per-fold pieces as they come in."""

    tags: ResultTags
    experiment_id: str
    parent_id: str
    config: dict[str, Any]
    classes: list[str]
    groups: dict[str, str]  # clip -> speaker, the report's bootstrap unit
    fold_names: list[str] = field(default_factory=list)
    fold_scores: list[Any] = field(default_factory=list)
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: dict[str, float] = field(default_factory=dict)
    frames: list[pd.DataFrame] = field(default_factory=list)
    ratings: dict[str, pd.DataFrame] = field(default_factory=dict)  # the corpus's rating sets (harness.ratings)

    def add_fold(self, fold: str, test_scores: Any, scored: dict[str, Any], val_scores: Any,
                 notes: dict[str, float]) -> None:
        """One fold's test scores and predictions (from `train.evaluate_split`) and its validation scores."""
        probabilities = np.asarray(scored["probabilities"])
        predicted = probabilities.argmax(axis=1)
        frame = pd.DataFrame({"fold": fold, "clip_id": list(scored["ids"]),
                              "group": [self.groups.get(i, "") for i in scored["ids"]],
                              "y_true": [self.classes[int(i)] for i in scored["labels"]],
                              "y_pred": [self.classes[int(i)] for i in predicted]})
        for c, name in enumerate(self.classes):
            frame[f"p_{name}"] = probabilities[:, c]
        self.frames.append(frame)
        self.fold_names.append(fold)
        self.fold_scores.append(test_scores)
        self.validation[fold] = val_scores.headline()
        self.notes.update({f"{fold}/{k}": float(v) for k, v in notes.items()})

    def outcome(self, seconds: float) -> MethodOutcome:
        trial = TrialRecord(0, self.config, dict(self.validation),
                            {f: {k.split("/", 1)[1]: v for k, v in self.notes.items() if k.startswith(f"{f}/")}
                             for f in self.fold_names})
        return MethodOutcome(self.tags.method, self.tags.dataset, self.tags.selection_metric, self.config, [trial],
                             list(self.fold_names), list(self.fold_scores),
                             pd.concat(self.frames, ignore_index=True), dict(self.notes), seconds, refit=False)

    def finish(self, seconds: float, report: dict[str, Any]) -> MethodOutcome:
        """Log the trial and the outcome and mark the parent FINISHED (`harness.track`, as `harness run` does)."""
        from dataclasses import replace

        from harness import track
        from harness.ratings import soft_label_metrics, with_votes

        outcome = self.outcome(seconds)
        # perceived-emotion scores from the best epochs' probabilities, as `harness run` logs them
        soft, _ = soft_label_metrics(outcome.predictions, self.classes, self.ratings)
        outcome = replace(outcome, predictions=with_votes(outcome.predictions, self.classes, self.ratings))
        track.log_trial(self.experiment_id, self.parent_id, self.tags, outcome.trials[0])
        track.finish_result(self.parent_id, outcome, self.classes, {},
                            artifacts={REPORT_ARTIFACT: report}, test_metrics=soft)
        return outcome

    def fail(self, error: str) -> None:
        from harness import track

        track.fail_result(self.parent_id, error)


def e2e_inputs(config: Any) -> str:
    """Which of Mocanu et al.'s inputs (§4.2) an end-to-end result had, per modality, for the claim lines."""
    clips = config.clips
    video_net = {"r3d_101": "3-D ResNet-101", "resnet": "r3d_18 (stand-in for the 3-D ResNet-101)",
                 "tiny": "a tiny 3-D CNN (stand-in for the 3-D ResNet-101)"}[config.backbone]
    faces = f"{'aligned face crops' if clips.crop == 'face' else 'whole frames'} at {clips.frame_size}px"
    spectrogram = (f"{clips.image_size}x{clips.image_size}" if clips.image_size else
                   f"{clips.spectrogram_bins}x{clips.spec_frames}")
    audio_net = "tiny 2-D CNN (stand-in for ResNet-18)" if config.backbone == "tiny" else "ResNet-18"
    return (f"video: {video_net} from {_weights_name(config.video_weights)} on {faces} (paper: ImageNet + "
            f"Kinetics weights, 224px faces); audio: {audio_net} from {_weights_name(config.audio_weights)} on "
            f"{clips.front_end} {spectrogram} images (paper: ImageNet weights, 224x224 STFT)")


def start_run(settings: Any, spec: Any, manifest: Any, folds: list[Any], chosen: list[Any], config: Any,
              cache: Path, workers: int, use_gpu: bool) -> E2ERun:
    """Tag the result and create its RUNNING parent run in the experiment `harness run` uses."""
    from harness import __version__, track
    from harness.protocols import get_protocol
    from harness.ratings import read_ratings
    from methods import get_method

    digest = evaluation_digest(manifest, folds)
    subset = [f.name for f in chosen] if len(chosen) != len(folds) else None
    setting, words = e2e_setting(digest, spec.protocol.label(), config, subset)
    name = method_name(config.backbone, config.loss, config.metric_loss)
    run_config = asdict(config)
    fingerprint = stable_hash({"harness": __version__, "method": name, "setting": setting, "config": run_config,
                               "seed": config.seed, "workers": workers, "use_gpu": use_gpu})
    base = get_method(BASE_METHOD)
    clips = config.clips
    tags = ResultTags(
        dataset=manifest.dataset, method=name, family=base.cls.family,
        modalities=",".join(sorted(base.required_modalities())), protocol=spec.protocol.label(),
        speaker_independent=str(get_protocol(spec.protocol.name).speaker_independent),
        features=f"audio=e2e-{clips.front_end}:{cache.stem},video=e2e-{clips.crop}:{cache.stem}",
        feature_failures="0", headline_metric=spec.headline_metric,
        # one configuration, so no trial is chosen by it (`best_trial` reads it from the validation scores); the
        # best epoch is chosen by `config.select_by`, which the setting records
        selection_metric="uar",
        setting=stable_hash(setting), setting_label=words, fingerprint=fingerprint, git_commit=track.git_commit(),
        inputs=e2e_inputs(config))
    experiment_id = track.use_experiment(settings.tracking_uri, settings.experiment, (spec.headline_metric,))
    record = {**settings.as_record(), "e2e": {**run_config, "workers": workers, "use_gpu": use_gpu},
              "e2e_setting": setting}
    corpus = {"digest": manifest.fingerprint(), "n_clips": len(manifest), "source": str(settings.data_dir(spec.name))}
    parent_id = track.start_result(experiment_id, tags, record, corpus)
    groups = dict(zip(manifest.table["clip_id"].astype(str), manifest.table["speaker"].astype(str), strict=True))
    return E2ERun(tags, experiment_id, parent_id, _flat_config(run_config), list(manifest.classes), groups,
                  ratings=read_ratings(spec, manifest.root))


def _flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """The trained configuration as the result's params: the clip settings as `clips.<name>` entries."""
    flat = {k: v for k, v in config.items() if k != "clips"}
    flat.update({f"clips.{k}": v for k, v in config.get("clips", {}).items()})
    return flat
