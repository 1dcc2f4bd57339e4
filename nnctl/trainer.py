"""One Trainer for every model: the loop, evaluation, metrics and checkpoints.

Each step does, in order: set the lr from the schedule, zero_grad, forward (the model's
loss), backward, check for NaN/inf, clip, optimizer step. Every epoch it evaluates on the
validation split, appends one JSON record per evaluation to metrics.jsonl, saves `last`,
and saves `best` when the validation metric improved (Progress.observe_validation, which
also counts towards early stopping). At the end it scores the test split with the best
weights. What a checkpoint holds besides the weights, and resuming from one, is in
checkpoint.py; the run folder's life around the Trainer (status, signals) in run.py.

The Trainer never prints: it reports to a `listener` (console.py draws progress bars;
tests pass a silent one).

Devices and processes: each batch is moved once per step to `device` (the model's
weights are already there), and with a `comm` from nnctl/distributed.py several
processes train one model: each takes its shard of every global batch, one allreduce
between backward and clipping averages the gradients (and sums the step's totals), and
evaluation totals are summed over ranks. Only the process given a `run` writes files.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from nnctl import checkpoint, streams, thread_tuner
from nnctl.backend import tree_to_device
from nnctl.config import TrainConfig
from nnctl.data.base import batch_length
from nnctl.distributed import SingleProcess, check_shardable, training_arrays
from nnctl.metrics import Totals, score
from nnctl.models.base import LossOutput
from nnctl.optim import clip_grad_norm, global_grad_norm, grad_norms, has_nonfinite
from nnctl.progress import Progress
from nnctl.rundir import RunDir


class TrainingStopped(Exception):
    """Training cannot go on (a NaN loss with on_nonfinite: stop). The message says why and what is kept."""


class Interrupted(Exception):
    """A stop was requested (SIGINT/SIGTERM); raised between two steps, where progress is consistent."""

    def __init__(self, signum: int, save_last: bool = True):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum
        self.save_last = save_last  # False: `last` already holds this point (the final test was cut short)


class SilentListener:
    """Hears every event and does nothing (console.PlainListener lists the events)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@dataclass
class Trainer:
    model: Any
    data: Any
    optimizer: Any
    schedule: Any
    config: TrainConfig
    experiment: dict[str, Any]  # the resolved config, stored in checkpoints
    model_extras: dict[str, Any]
    run: RunDir | None = None
    listener: Any = field(default_factory=SilentListener)
    progress: Progress = field(default_factory=Progress)
    state: Any = None  # the model's carried state (the LM's h, c)
    stop_signal: int | None = None  # set by request_stop (a signal handler); acted on between steps
    comm: Any = field(default_factory=SingleProcess)  # nnctl.distributed: MPI ranks, or just this process
    device: str = "cpu"  # where the model's arrays live; batches are moved there once per step
    threads: Any = None  # nnctl.thread_tuner: the thread count in use (tuned from step times, or fixed)
    _agreed_stop: int | None = None  # several ranks: a stop every rank learned from the same step's allreduce
    # The schedule's rate at the last step, which records and progress lines show. The step
    # itself may run at a multiple of it (variable-length BPTT scales it by window length).
    scheduled_lr: float | None = None

    def __post_init__(self):
        # The Params never change once the model is built: walk the model for them once,
        # not at every step (clipping, the NaN check and the allreduce all need the list).
        self.named_params = self.model.named_params()
        self.params = list(self.named_params.values())
        self._started = time.perf_counter()  # fit() starts the clock again
        if self.threads is None:  # tuned on the CPU of one process, unless a count is given
            self.threads = thread_tuner.for_training(self.config.threads,
                                                     tune=self.device == "cpu" and self.comm.size == 1)

    def request_stop(self, signum: int) -> None:
        self.stop_signal = signum

    def resume_from(self, ckpt) -> None:
        """Restore everything a checkpoint holds, so training continues exactly where it stopped."""
        progress, state = checkpoint.restore_training(ckpt, self.model, self.optimizer, self.schedule)
        self.progress = Progress(**progress)
        # The checkpoint holds the whole global batch's state; each rank carries its rows of it.
        state = self.comm.shard_state(state)
        self.state = tree_to_device(state, self.device) if self.device != "cpu" else state
        if self.run is not None:  # records written after that checkpoint will be written again
            self.run.truncate_metrics(self.progress.records)

    @property
    def metric(self) -> str:
        return self.model.metric

    def local(self, batch):
        """This process's part of a global batch, on the model's device."""
        if self.comm.size > 1:
            batch = self.data.shard(batch, self.comm.rank, self.comm.size)
        return tree_to_device(batch, self.device) if self.device != "cpu" else batch

    # -- evaluation --------------------------------------------------------------------
    def evaluate(self, split: str) -> dict[str, float]:
        """Mean loss (and accuracy or perplexity) over a whole split, in eval mode."""
        batch_size = self.config.eval_batch_size
        self.listener.on_eval_start(split, self.data.num_batches(split, batch_size))
        batches = (self.local(b) for b in self.data.batches(split, rng=None, batch_size=batch_size))
        totals = score(self.model, batches, on_batch=self.listener.on_eval_step)
        summed = self.comm.sum_totals(totals.loss_sum, totals.count, totals.correct)
        totals = Totals(*summed, totals.examples, totals.correct_tokens)  # (those two: one process only)
        return {**totals.summary(self.metric), "count": totals.count}

    # -- checkpoints -------------------------------------------------------------------
    def save(self, which: str) -> None:
        # Every rank takes part in gathering the carried state (a collective); only the one
        # with a run directory writes. The state saved is the global batch's, whatever the ranks.
        state = self.comm.gather_rows(self.state) if which == "last" else None
        if self.run is None:
            return
        # elapsed includes this process's time, so a resumed run keeps counting from there
        progress = {**self.progress.to_dict(), "elapsed": self.elapsed()}
        meta = checkpoint.training_meta(self.experiment, self.model_extras, self.model, progress, self.schedule)
        checkpoint.save(self.run.checkpoint_path(which), self.model, meta,
                        optimizer=self.optimizer, state=state, vocab=self.data.vocab)

    def record(self, split: str, values: dict[str, float], extra: dict[str, Any] | None = None,
               epoch: int | None = None) -> dict:
        """Append one evaluation to metrics.jsonl; `epoch` defaults to the epoch in progress (1-based)."""
        rec = {"epoch": self.progress.epoch + 1 if epoch is None else epoch, "step": self.progress.step, "split": split,
               **{k: v for k, v in values.items()}, "lr": self.shown_lr(),
               "elapsed": round(self.elapsed(), 3), **(extra or {})}
        if self.run is not None:
            self.run.append_metrics(rec)
            self.progress.records += 1
        self.listener.on_record(rec)
        return rec

    def shown_lr(self) -> float:
        return self.optimizer.lr if self.scheduled_lr is None else self.scheduled_lr

    def elapsed(self) -> float:
        return self.progress.elapsed + (time.perf_counter() - self._started)

    # -- training ----------------------------------------------------------------------
    def step(self, batch) -> LossOutput | None:
        """One optimizer step on one batch; None when a non-finite batch was skipped."""
        started = time.perf_counter()
        p = self.progress
        lr_scale = getattr(self.data, "lr_scale", None)  # variable-length BPTT: lr * window length / bptt
        self.scheduled_lr = self.schedule.lr(p.epoch, p.step)
        self.optimizer.lr = self.scheduled_lr * (lr_scale(batch) if lr_scale else 1.0)
        self.model.zero_grad()
        batch = self.local(batch)
        if batch_length(batch) > 0:
            out, new_state = self.model.loss(batch, self.state)
            self.model.backward()
        else:  # a short last batch left this rank nothing: it adds zero gradient and zero items
            out, new_state = LossOutput(0.0, 0, 0), self.state
        params = self.params
        # Several ranks: average the gradients and sum the totals (one allreduce); else as it is.
        out, stop = self.comm.combine_step(params, out, stop=self.stop_signal is not None)
        if stop and self._agreed_stop is None:
            self._agreed_stop = self.stop_signal or signal.SIGTERM
        clip = self.config.clip_grad_norm
        # With clipping on, the global norm is needed anyway, and it is finite exactly when
        # every gradient is (or when the float32 sum of squares overflows, past a norm of
        # 1.8e19: diverged too), so one pass over the gradients answers both questions.
        norm = global_grad_norm(params) if clip is not None else None
        grads_finite = math.isfinite(norm) if norm is not None else not has_nonfinite(params)
        finite = math.isfinite(float(out.loss_sum)) and grads_finite
        if not finite:
            if self.config.on_nonfinite == "skip":
                p.nonfinite_skips += 1
                self.state = None  # the carried state may hold the NaN too
                return None
            last = self.run.checkpoint_path("last") if self.run else "none"
            raise TrainingStopped(
                f"non-finite loss or gradient at epoch {p.epoch + 1}, step {p.step + 1}; stopped. The last good "
                f"checkpoint is {last}; lower the learning rate, set train.clip_grad_norm, or set "
                f"train.on_nonfinite: skip")
        self.state = new_state
        # the gradients as backward made them, before clipping changes them
        logged_norms = grad_norms(self.named_params) if self.logs_grad_norms(p.step + 1) else None
        if clip is not None:
            clip_grad_norm(params, clip, norm=norm)
        self.optimizer.step()
        p.step += 1
        if logged_norms is not None:
            self.record_grad_norms(logged_norms)
        self.threads.observe(time.perf_counter() - started, out.count)
        return out

    def logs_grad_norms(self, step: int) -> bool:
        """train.log_grad_norms: step 1 and every log_every-th step."""
        return self.config.log_grad_norms and (step == 1 or step % self.config.log_every == 0)

    def record_grad_norms(self, norms: dict[str, float]) -> None:
        """One "grads" line in metrics.jsonl: each parameter's gradient norm and the global one.

        Not shown in the progress output; `nnctl plot RUN --grads` draws them.
        """
        total = math.sqrt(sum(n * n for n in norms.values()))
        rec = {"epoch": self.progress.epoch + 1, "step": self.progress.step, "split": "grads",
               "grad_norm": total, "clip_grad_norm": self.config.clip_grad_norm, "lr": self.shown_lr(),
               "grad_norms": norms}
        if self.run is not None:
            self.run.append_metrics(rec)
            self.progress.records += 1

    def _stop_requested(self) -> int | None:
        # One process acts on its own signal; ranks act only on a stop they all agreed on.
        return self.stop_signal if self.comm.size == 1 else self._agreed_stop

    def fit(self) -> dict[str, Any]:
        self._started = time.perf_counter()
        p, cfg = self.progress, self.config
        check_shardable(self.comm, self.data, self.model, self.experiment["model"]["type"])
        steps_per_epoch = self.data.num_batches("train")
        self.listener.on_fit_start({"epochs": cfg.epochs, "steps_per_epoch": steps_per_epoch,
                                    "unit": self.data.unit, "run": str(self.run.path) if self.run else None,
                                    "params": self.model.num_params(), "start_epoch": p.epoch,
                                    "metric": self.metric, "log_every": cfg.log_every})
        if self.threads.note:  # an environment variable overrides train.threads
            self.listener.on_message(self.threads.note)
        if not getattr(self.model, "trainable", True):
            return self._fit_closed_form()

        # A run that stopped early and is resumed (its final test cut short) trains no more epochs.
        stopped_early = p.stopped_early(cfg.early_stopping)
        while p.epoch < cfg.epochs and not stopped_early:
            # Shuffling depends only on (seed, epoch), so a resumed epoch sees the same order.
            epoch_rng = streams.stream(self.experiment["seed"], streams.EPOCH_ORDER, p.epoch)
            totals = p.epoch_totals()
            window_count, window_start = 0, time.perf_counter()
            if p.batch == 0:
                self.state = None
            self.model.train()
            self.listener.on_epoch_start(p.epoch, steps_per_epoch)
            for index, batch in enumerate(self.data.batches("train", rng=epoch_rng)):
                if index < p.batch:
                    continue  # resuming mid-epoch: these batches were trained before the stop
                if self._stop_requested() is not None:
                    raise Interrupted(self._stop_requested())
                out = self.step(batch)
                p.batch = index + 1
                if out is not None:
                    totals.add(out)
                    window_count += out.count
                p.keep_epoch_totals(totals)
                now = time.perf_counter()
                self.listener.on_step({
                    "epoch": p.epoch, "batch": p.batch, "steps_per_epoch": steps_per_epoch, "step": p.step,
                    "loss": totals.summary(self.metric)["loss"], "lr": self.shown_lr(), "step_lr": self.optimizer.lr,
                    "throughput": window_count / max(now - window_start, 1e-9), "best": p.best,
                    "threads": self.threads.count,
                })
                if cfg.eval_every and p.step % cfg.eval_every == 0:
                    with self.optimizer.averaged():  # NT-ASGD: the averaged weights (else a no-op)
                        self.record("valid", self.evaluate("valid"))
                if cfg.checkpoint_every and p.step % cfg.checkpoint_every == 0:
                    self.save("last")
            epoch_seconds = time.perf_counter() - window_start
            records = [self.record("train", totals.summary(self.metric),
                                   {"throughput": round(window_count / max(epoch_seconds, 1e-9), 1),
                                    "nonfinite_skips": p.nonfinite_skips, "threads": self.threads.count})]
            with self.optimizer.averaged():
                valid = self.evaluate("valid")
            records.append(self.record("valid", valid))
            self.schedule.observe(p.epoch, valid["loss"])
            self.optimizer.observe(valid["loss"])  # NT-ASGD's trigger
            improved = p.observe_validation(self.metric, valid.get(self.metric, valid["loss"]))
            p.epoch, p.batch = p.epoch + 1, 0
            p.keep_epoch_totals(Totals())
            self.state = None
            if improved:
                with self.optimizer.averaged():  # `best` holds the weights evaluated
                    self.save("best")
            self.save("last")
            self.listener.on_epoch_end(p.epoch - 1, records)
            if p.stopped_early(cfg.early_stopping):
                self.listener.on_message(f"early stopping: no better validation {self.metric} "
                                         f"for {cfg.early_stopping} epochs")
                stopped_early = True
                break
        return self._finish(stopped_early)

    def _fit_closed_form(self) -> dict[str, Any]:
        self.model.fit(self.data)
        self.progress.epoch = self.config.epochs
        values = self.evaluate("valid") if "valid" in self.data.splits else {}
        if values:
            self.record("valid", values, epoch=self.progress.epoch)
            self.progress.best = values.get(self.metric, values.get("loss"))
            self.progress.best_epoch = 1
        self.save("best")
        self.save("last")
        return self._finish(False)

    def _finish(self, stopped_early: bool) -> dict[str, Any]:
        p = self.progress
        summary: dict[str, Any] = {"epochs": p.epoch, "steps": p.step, "best_valid": p.best,
                                   "best_epoch": p.best_epoch, "stopped_early": stopped_early,
                                   "metric": self.metric}
        if "test" in self.data.splits:
            if self.run is not None and self.run.checkpoint_path("best").is_file():
                checkpoint.restore_model(self.model, checkpoint.load(self.run.checkpoint_path("best")))
            # the ranks without a run directory take rank 0's best weights
            self.comm.broadcast_arrays(training_arrays(self.model))
            test = self.evaluate("test")
            if self.stop_signal is not None:  # Ctrl-C during the test: `last` (saved after the final
                # epoch) resumes straight to this test; the best weights loaded above are not `last`
                raise Interrupted(self.stop_signal, save_last=False)
            self.record("test", test, {"from": "best"}, epoch=p.epoch)  # after the last epoch
            summary["test"] = test
        summary["elapsed"] = round(self.elapsed(), 1)
        self.listener.on_fit_end(summary)
        return summary
