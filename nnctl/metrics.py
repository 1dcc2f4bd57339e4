"""What a metric is, defined once: its name, which way is better, how it is printed and
plotted, and how it comes from the totals summed over batches.

The Trainer (evaluation, best checkpoint, early stopping), `nnctl runs` and `compare`,
the console and the plots all read it here. A model names its main metric
(`model.metric`: "accuracy", "perplexity" or "loss"); the loss is always reported too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from nnctl.data.base import batch_length
from nnctl.models.base import LossOutput


@dataclass
class Totals:
    """Sums of LossOutput over batches, turned into mean loss, accuracy or perplexity."""

    loss_sum: float = 0.0
    count: int = 0  # the items the loss is averaged over (tokens, images, target words)
    correct: int = 0
    examples: int = 0  # LossOutput.examples summed: accuracy is over examples when > 0
    correct_tokens: int = 0

    def add(self, out: LossOutput) -> None:
        self.loss_sum += float(out.loss_sum)
        self.count += int(out.count)
        self.correct += int(out.correct or 0)
        self.examples += int(out.examples or 0)
        self.correct_tokens += int(out.correct_tokens or 0)

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    def summary(self, metric: str) -> dict[str, float]:
        """{"loss": .., and the values the model's main metric reports}, in that order."""
        out = {"loss": self.mean_loss}
        for name in REPORTED_WITH.get(metric, ()):
            value = METRICS[name].from_totals(self)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    text: Callable[[float], str]  # how tables, progress lines and the summary print a value
    title: str  # a plot panel's title
    from_totals: Callable[[Totals], float | None]  # None: not defined for these totals
    percent: bool = False  # a share, drawn on a 0-100% axis
    meaning: str = ""  # what it counts, in `nnctl eval`'s table (a model may say it better: Model.metric_meanings)


def _accuracy(t: Totals) -> float:
    return t.correct / max(t.examples or t.count, 1)


def _token_accuracy(t: Totals) -> float | None:
    # whole examples right is "accuracy"; the share of their items right is this
    return t.correct_tokens / max(t.count, 1) if t.examples else None


def _perplexity(t: Totals) -> float:
    return math.exp(min(t.mean_loss, 700.0))  # exp(700) is near float64's limit


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("loss", False, lambda v: f"{v:.4f}", "loss", lambda t: t.mean_loss,
           meaning="mean cross-entropy per item, in nats"),
    Metric("perplexity", False, lambda v: f"{v:.2f}", "perplexity", _perplexity, meaning="exp(loss)"),
    Metric("accuracy", True, lambda v: f"{100 * v:.2f}%", "accuracy", _accuracy, percent=True,
           meaning="share of examples right"),
    Metric("token_accuracy", True, lambda v: f"{100 * v:.2f}%", "token accuracy", _token_accuracy, percent=True,
           meaning="share of items right"),
)}

# A model's main metric and what is reported with it besides the loss.
REPORTED_WITH: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "token_accuracy"),
    "perplexity": ("perplexity",),
    "loss": (),
}

# The main metrics a run's records can hold; the first one present is the run's metric.
MAIN_METRICS = ("perplexity", "accuracy")


def higher_is_better(metric: str) -> bool:
    return metric in METRICS and METRICS[metric].higher_is_better


def is_better(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if higher_is_better(metric) else value < best


def format_value(key: str, value: Any) -> str:
    """A metric, the learning rate or any other recorded value as the console prints it."""
    if value is None:
        return "-"
    if key in METRICS:
        return METRICS[key].text(value)
    if key == "lr" or isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def meaning(key: str, model=None) -> str:
    """What a reported value counts: the model's own words (Model.metric_meanings) or the metric's."""
    own = getattr(model, "metric_meanings", {}).get(key)
    return own or (METRICS[key].meaning if key in METRICS else "")


def score(model, batches, on_batch=None) -> Totals:
    """Sum a model's LossOutput over batches in eval mode (state carried along), then back to train mode.

    No weight changes meanwhile, so the layers may keep what they derive from them (Layer.weights_fixed).
    """
    totals, state = Totals(), None
    model.eval()
    try:
        with model.weights_fixed():
            for batch in batches:
                if batch_length(batch) > 0:  # under MPI an eval batch can leave a rank nothing
                    out, state = model.loss(batch, state)
                    totals.add(out)
                if on_batch is not None:
                    on_batch()
    finally:
        model.train()
    return totals
