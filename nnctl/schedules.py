"""Learning-rate schedules: constant, step, cosine (with warmup), plateau, linear.

The Trainer asks the schedule for the lr before every training step and tells it each
epoch's validation loss:

    schedule = SCHEDULES.build(cfg, path="schedule", base_lr=opt.lr,
                               steps_per_epoch=data.num_batches("train"), epochs=epochs)
    for epoch in range(epochs):                  # epochs count from 0
        for batch in ...:
            opt.lr = schedule.lr(epoch, step)    # step: global count of steps done so far
            ...; opt.step(); step += 1
        schedule.observe(epoch, val_loss)        # lower is better

constant, step, cosine and linear are pure functions of (epoch, step); plateau keeps a little
state (current lr, best loss, epochs without improvement) that `state_dict()` returns
as JSON-ready scalars for the checkpoint.
"""

from __future__ import annotations

import math

from nnctl.errors import CheckpointError
from nnctl.registry import Registry

SCHEDULES = Registry("schedule")


class Schedule:
    """Base class: validates the extras the Trainer supplies; no state by default."""

    def __init__(self, *, base_lr: float, steps_per_epoch: int, epochs: int):
        if not (math.isfinite(base_lr) and base_lr > 0):
            raise ValueError(f"base_lr (the optimizer's lr) must be a finite number > 0, got {base_lr}")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.base_lr = float(base_lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)

    def lr(self, epoch: int, step: int) -> float:
        """The lr for the training step about to run: 0-based `epoch`, global `step` done so far."""
        raise NotImplementedError

    def observe(self, epoch: int, val_loss: float) -> None:
        """Called after each epoch's validation; only stateful schedules (plateau) use it."""

    def check(self) -> None:
        """Raise ValueError unless the lr is a finite number >= 0 at the first and last step of
        every epoch (up to 1000 epochs, spread over the run), so a schedule that overflows
        stops before training starts, not epochs into it."""
        count = min(self.epochs, 1000)
        for epoch in sorted({round(i * (self.epochs - 1) / max(count - 1, 1)) for i in range(count)}):
            for step in (epoch * self.steps_per_epoch, (epoch + 1) * self.steps_per_epoch - 1):
                try:
                    lr = float(self.lr(epoch, step))
                except (OverflowError, ZeroDivisionError):
                    lr = math.inf
                if not (math.isfinite(lr) and lr >= 0):
                    raise ValueError(f"the learning rate would be {lr} at epoch {epoch + 1} (step {step + 1}); "
                                     "choose values that keep it a finite number")

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        expected = self.state_dict()
        kind = getattr(self, "registered_name", type(self).__name__)
        fix = f"(loading into '{kind}'); resume with the schedule it was trained with"
        for key in d:
            if key not in expected:
                raise CheckpointError(f"unexpected key '{key}' in the checkpoint's schedule state {fix}")
        for key in expected:
            if key not in d:
                raise CheckpointError(f"key '{key}' is missing from the checkpoint's schedule state {fix}")
        self._load(d)

    def _load(self, d: dict) -> None:
        """Restore state from a dict whose keys were checked by `load_state_dict`."""


@SCHEDULES.register("constant")
class Constant(Schedule):
    """lr = base_lr throughout."""

    def __init__(self, *, base_lr: float, steps_per_epoch: int, epochs: int):
        super().__init__(base_lr=base_lr, steps_per_epoch=steps_per_epoch, epochs=epochs)

    def lr(self, epoch: int, step: int) -> float:
        return self.base_lr


@SCHEDULES.register("step")
class StepDecay(Schedule):
    """Multiply the lr by `factor` at epoch `start`, and again every `every` epochs after:

        lr(epoch) = base_lr                                       for epoch < start
                  = base_lr · factor^(1 + (epoch − start) // every)  for epoch >= start

    `start` defaults to `every`, which is PyTorch's StepLR: with every = 10, epochs 0-9 use
    base_lr, epochs 10-19 base_lr·factor, and so on. Zaremba et al. 2014's small LSTM
    (lr 1 for 4 epochs, then halved every epoch; TensorFlow's ptb_word_lm max_epoch = 4)
    is `factor: 0.5, every: 1, start: 4`: epochs 0-3 use base_lr, epoch 4 base_lr/2,
    epoch 5 base_lr/4, ...
    """

    def __init__(self, factor: float = 0.5, every: int = 1, start: int | None = None,
                 *, base_lr: float, steps_per_epoch: int, epochs: int):
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"factor must be a finite number > 0 (the lr is multiplied by it), got {factor}")
        if every < 1:
            raise ValueError(f"every must be >= 1 (epochs between decays), got {every}")
        if start is not None and start < 1:
            raise ValueError(f"start must be >= 1 (the first epoch with the decayed lr; "
                             f"epoch 0 always uses base_lr), got {start}")
        super().__init__(base_lr=base_lr, steps_per_epoch=steps_per_epoch, epochs=epochs)
        self.factor = float(factor)
        self.every = int(every)
        self.start = self.every if start is None else int(start)

    def lr(self, epoch: int, step: int) -> float:
        if epoch < self.start:
            return self.base_lr
        return self.base_lr * self.factor ** (1 + (epoch - self.start) // self.every)


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    """Linear warmup, then cosine decay from base_lr to `min_lr` over the remaining steps.

    With N = epochs · steps_per_epoch total steps and W = warmup_steps, for step s (0-based):

        s < W:  lr = base_lr · (s + 1) / W          (the first step is not wasted at lr 0)
        s >= W: lr = min_lr + (base_lr − min_lr) · (1 + cos(π · (s − W) / (N − W))) / 2

    so step W gets base_lr and the lr would reach min_lr one step after the last (as
    PyTorch's CosineAnnealingLR with T_max = N − W); steps past N stay at min_lr.
    Loshchilov & Hutter 2017 (SGDR) without restarts; warmup as in Goyal et al. 2017.
    """

    def __init__(self, min_lr: float = 0.0, warmup_steps: int = 0,
                 *, base_lr: float, steps_per_epoch: int, epochs: int):
        super().__init__(base_lr=base_lr, steps_per_epoch=steps_per_epoch, epochs=epochs)
        if not (math.isfinite(min_lr) and 0 <= min_lr <= self.base_lr):
            raise ValueError(f"min_lr must be in [0, base_lr = {self.base_lr}], got {min_lr}")
        total = self.steps_per_epoch * self.epochs
        if not 0 <= warmup_steps < total:
            raise ValueError(f"warmup_steps must be in [0, {total}) (the run has {self.epochs} epochs "
                             f"x {self.steps_per_epoch} steps), got {warmup_steps}")
        self.min_lr = float(min_lr)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = total

    def lr(self, epoch: int, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


@SCHEDULES.register("plateau")
class Plateau(Schedule):
    """Multiply the lr by `factor` when the validation loss stops improving.

    After each epoch: if val_loss < the best so far, it becomes the best; otherwise the
    epoch counts as "bad", and after more than `patience` bad epochs in a row the lr is
    multiplied by `factor` (never below `min_lr`) and the count restarts. A NaN loss is
    bad. `factor: 0.25` with `patience: 0` is Saito's BetterRnnlm and pytorch/examples'
    word_language_model: lr /= 4 whenever validation perplexity gets no better.
    `factor` MULTIPLIES, as in the step schedule and PyTorch's ReduceLROnPlateau.
    """

    def __init__(self, factor: float = 0.25, patience: int = 0, min_lr: float = 0.0,
                 *, base_lr: float, steps_per_epoch: int, epochs: int):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1): the lr is multiplied by it "
                             f"(0.25 divides by 4), got {factor}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0 (bad epochs tolerated before a cut), got {patience}")
        if not (math.isfinite(min_lr) and min_lr >= 0):
            raise ValueError(f"min_lr must be a finite number >= 0, got {min_lr}")
        super().__init__(base_lr=base_lr, steps_per_epoch=steps_per_epoch, epochs=epochs)
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_lr = float(min_lr)
        self.current_lr = self.base_lr
        self.best: float | None = None  # None until the first observation
        self.bad_epochs = 0

    def lr(self, epoch: int, step: int) -> float:
        return self.current_lr

    def observe(self, epoch: int, val_loss: float) -> None:
        val_loss = float(val_loss)
        if not math.isnan(val_loss) and (self.best is None or val_loss < self.best):
            self.best = val_loss
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.current_lr = max(self.min_lr, self.current_lr * self.factor)
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"lr": self.current_lr, "best": self.best, "bad_epochs": self.bad_epochs}

    def _load(self, d: dict) -> None:
        self.current_lr = float(d["lr"])
        self.best = None if d["best"] is None else float(d["best"])
        self.bad_epochs = int(d["bad_epochs"])


# -- linear decay (word2vec's annealing) --------------------------------------------------
@SCHEDULES.register("linear")
class LinearDecay(Schedule):
    """Linear decay from base_lr to base_lr · min_ratio over the whole run, per step:

        lr(step) = base_lr · max(min_ratio, 1 − step / N),   N = epochs · steps_per_epoch

    word2vec.c and gensim anneal alpha this way (0.025 → 0.0001, min_ratio 1e-4), by the
    fraction of the corpus processed. Steps past N (an epoch with a few more batches than
    expected) stay at the floor.
    """

    def __init__(self, min_ratio: float = 1e-4, *, base_lr: float, steps_per_epoch: int, epochs: int):
        if not 0 <= min_ratio <= 1:
            raise ValueError(f"min_ratio must be in [0, 1] (the final lr is base_lr times it), got {min_ratio}")
        super().__init__(base_lr=base_lr, steps_per_epoch=steps_per_epoch, epochs=epochs)
        self.min_ratio = float(min_ratio)
        self.total_steps = self.steps_per_epoch * self.epochs

    def lr(self, epoch: int, step: int) -> float:
        return self.base_lr * max(self.min_ratio, 1.0 - step / self.total_steps)
