"""The one early-stopping rule of every training loop: feature-mode training (`methods.neural.training`), the
end-to-end mode (`harness.e2e.train`) and stage-1 fine-tuning (`harness.finetune.stage`).

Why one rule: a method's result must not depend on which loop trained it. Before this module the three loops
had three tie rules (the feature loop broke ties by validation loss, e2e and fine-tuning kept the first epoch),
so an equal validation score picked different weights depending on the mode.

The rule, epoch by epoch:
- the selection score is `select_by` of the validation split: "uar", "accuracy" or "loss" (minus the
  cross-entropy, so higher is always better);
- an epoch is the new best when its score is strictly higher than the best so far, or exactly equal with a
  strictly lower validation cross-entropy;
- anything else (including an exact tie on both) keeps the earlier epoch and counts as an epoch without gain;
- training stops once `patience` consecutive epochs brought no gain.

Why this tie rule: UAR and accuracy on a validation split of a few dozen clips are step functions, so exact ties
are common while the fit still changes; the cross-entropy is a finer reading of the same predictions and
separates them. A tie on both is no evidence of progress, so it keeps the earlier (less trained) weights and
lets patience end a plateau (as Keras' and Lightning's strict `min_delta=0` rules do). It is the rule the
feature loop already had, so the committed feature-mode leaderboard does not change with this module.

The state is a plain dict (`state_dict` / `from_state`) so the end-to-end mode can store it in its resume
checkpoints; this module imports neither torch nor the harness (a method must work in a notebook alone).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

SELECT_BY = ("uar", "accuracy", "loss")


def selection_score(select_by: str, uar: float, accuracy: float, loss: float) -> float:
    """Higher is better: validation UAR (the harness's rule), accuracy (Mocanu §4.2 and Babaali §3.2 keep the
    best epoch by accuracy) or minus the cross-entropy (fairseq, so SSE-FT, keeps the lowest-loss checkpoint)."""
    if select_by == "uar":
        return uar
    if select_by == "accuracy":
        return accuracy
    if select_by == "loss":
        return -loss
    raise ValueError(f"select_by must be one of {SELECT_BY}, got {select_by!r}")


class EarlyStoppingStateError(ValueError):
    """A stored early-stopping state that cannot continue under the requested rule (one line, with the fix)."""


@dataclass
class EarlyStopping:
    """Best score, its epoch and the epochs since, under the module's rule (see the module docstring).

    patience:   epochs without gain after which `should_stop` is True (>= 1).
    select_by:  "uar" | "accuracy" | "loss": what "gain" means.
    best_score: the best epoch's selection score (-inf before any epoch).
    best_loss:  the best epoch's validation cross-entropy (the tie-break; inf before any epoch).
    best_uar:   the best epoch's validation UAR, whatever `select_by` is (reported beside the result).
    best_epoch: the best epoch's number as the caller counts epochs (-1 before any gain).
    since_best: epochs seen since the best one (or since the start, before any gain).
    """

    patience: int
    select_by: str = "uar"
    best_score: float = -math.inf
    best_loss: float = math.inf
    best_uar: float = -1.0
    best_epoch: int = -1
    since_best: int = 0

    def __post_init__(self) -> None:
        if self.select_by not in SELECT_BY:
            raise ValueError(f"select_by must be one of {SELECT_BY}, got {self.select_by!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience must be an integer >= 1 (epochs without gain before stopping), got "
                             f"{self.patience!r}")

    def update(self, epoch: int, *, uar: float, accuracy: float, loss: float) -> bool:
        """Record one epoch's validation UAR, accuracy and cross-entropy; True when it is the new best epoch (the
        caller keeps its weights)."""
        score = selection_score(self.select_by, uar, accuracy, loss)
        if score > self.best_score or (score == self.best_score and loss < self.best_loss):
            self.best_score, self.best_loss, self.best_uar = float(score), float(loss), float(uar)
            self.best_epoch, self.since_best = int(epoch), 0
            return True
        self.since_best += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once `patience` consecutive epochs brought no gain."""
        return self.since_best >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the rule after a restart (plain numbers and strings)."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any], patience: int, select_by: str) -> EarlyStopping:
        """The rule as a checkpoint left it, continued with `patience` (which may change between a run and its
        resume: a longer run may wait longer). A state kept under another `select_by` is refused: its best score
        is another quantity, so comparing new epochs with it would pick the wrong weights."""
        stored = state.get("select_by")
        if stored != select_by:
            raise EarlyStoppingStateError(
                f"the checkpoint chose its best epoch by validation {stored}, this run selects by {select_by}; "
                f"resume with the same selection, or start a fresh run")
        known = {k: state[k] for k in ("best_score", "best_loss", "best_uar", "best_epoch", "since_best")
                 if k in state}
        return cls(patience=patience, select_by=select_by, **known)
