"""Where training stands, saved in every checkpoint so that a run resumes exactly; and the
one place that decides whether a validation is the best so far and when to stop early."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnctl.metrics import Totals, is_better


@dataclass
class Progress:
    epoch: int = 0  # the epoch in progress (0-based)
    batch: int = 0  # batches of that epoch already done
    step: int = 0  # optimizer steps so far
    best: float | None = None  # best validation metric so far
    best_epoch: int | None = None
    epochs_without_improvement: int = 0
    nonfinite_skips: int = 0
    elapsed: float = 0.0  # training seconds before this process started
    records: int = 0  # lines in metrics.jsonl; a resume cuts the file back to this many
    epoch_loss_sum: float = 0.0  # the running train totals of the epoch in progress
    epoch_count: int = 0
    epoch_correct: int = 0
    epoch_examples: int = 0
    epoch_correct_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def epoch_totals(self) -> Totals:
        return Totals(self.epoch_loss_sum, self.epoch_count, self.epoch_correct, self.epoch_examples,
                      self.epoch_correct_tokens)

    def keep_epoch_totals(self, totals: Totals) -> None:
        self.epoch_loss_sum, self.epoch_count, self.epoch_correct = totals.loss_sum, totals.count, totals.correct
        self.epoch_examples, self.epoch_correct_tokens = totals.examples, totals.correct_tokens

    # -- the best validation and early stopping ---------------------------------------
    def observe_validation(self, metric: str, value: float) -> bool:
        """Note the epoch in progress's validation value; True if it is the best so far."""
        if is_better(metric, value, self.best):
            self.best, self.best_epoch, self.epochs_without_improvement = value, self.epoch + 1, 0
            return True
        self.epochs_without_improvement += 1
        return False

    def stopped_early(self, patience: int | None) -> bool:
        """train.early_stopping: `patience` validations in a row without a better value."""
        return bool(patience and self.epochs_without_improvement >= patience)
