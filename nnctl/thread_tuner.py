"""How many threads to train on: measured while training, and measured again as the load changes.

On an idle machine one BLAS thread per core is fastest. When other processes keep some
cores busy, a product split over every core waits for the thread that shares its core,
and fewer threads can be several times faster (benchmarks/README.md, "busy machine").
Which count wins depends on the load of the moment, so the Trainer hands each step's
seconds to a ThreadTuner, which sets both of nnctl's pools (`threads.use_threads`):

* explore: score the current count by its latest steps (by steps timed afresh when a
  drift called for the look: it may be a passing spell), then time each other count,
  skipping the first step after each switch (the new threads wake up); a trial is at
  least `trial_steps` steps and `trial_seconds` of them, and its score is its seconds per
  item, all its steps together: the throughput. On a host whose second core comes and
  goes, the steps at two threads are now fast, now slow; the median of a few of them
  decides by chance, and a trial of a few seconds sees what a minute of training gets.
  A trial whose first `trial_steps` steps are already more than `give_up` times slower
  than the best count scored so far ends there: so slow a start rarely turns into a win,
  and on a busy machine those are the slow steps (every look would otherwise cost seconds
  of them); if a passing spell was to blame, the next recheck looks again;
* keep the fastest, but only if it beats the count explored from by `margin`, and does
  so again when that count is timed a second time (A B A: a slow spell while A was timed
  first does not decide);
* explore again after `recheck_seconds` of training (doubled, up to `max_recheck_seconds`,
  each time the same count wins again; a switch starts it over), or as soon as the
  seconds per item of the last `window` steps are more than `drift` away from what the
  kept count measured.

The first `start_after` steps (allocation, warm caches) are never timed. Steps of under
`min_step_seconds` are not tuned: their products are too small for OpenBLAS to thread.
Longer ones are tuned, however short: a trial's seconds, not its count of steps, average
the noise away, and the CNN's short steps are ones where one thread beats two when the
other core is busy (benchmarks/README.md, "A busy machine").

An explicit count wins and there is nothing to tune (`for_training`): `NNCTL_NUM_THREADS`
(nnctl's pool, and BLAS too unless one of the next two is set), `OPENBLAS_NUM_THREADS` or
`OMP_NUM_THREADS` (read by OpenBLAS when it loads), then `train.threads`; so does a device
other than the CPU, or several processes.

What a count changes (measured 2026-12-02 with float32, 1 against 2 threads, OpenBLAS
0.3.31 Haswell kernels, same seed). OpenBLAS blocks a product differently for each thread
count, so every product big enough to be threaded (the LM's decoder, input, recurrent and
weight-gradient products, the CNN's) differs in its last bits. The losses are identical
for the first 3-4 steps and then differ by about 1e-7; training carries that forward at
its own rate: the CNN (Adam, lr 1e-3) still agreed to 2e-7 after 100 steps, while the
small LM (SGD at lr 20) differed by up to 3% per batch after 150 steps (the mean of the
last 20 losses by 0.25%). A product small enough to stay on one thread (a row vector,
the tests' toy sizes) is bit-identical, and so is nnctl's own elementwise pool at any
count (each row is one thread's, in blocks fixed by the row count). So a run at a fixed
count repeats and resumes bit for bit; a tuned run does only where the tuner chose the
same counts at the same steps (set `train.threads` for runs that must repeat exactly).
Switching adds nothing of its own: it happens between two steps, and every step runs at
one count.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Sequence

from nnctl.threads import cores, explicit_setting, num_threads, use_threads


def per_item(steps: Iterable[tuple[float, int]]) -> float:
    """Seconds per item of (seconds, items) steps, taken together."""
    steps = list(steps)
    return sum(s for s, _ in steps) / sum(n for _, n in steps)


def candidate_counts(available: int) -> list[int]:
    """Every count up to 4 cores; beyond, the powers of two below the cores, and the cores."""
    if available <= 4:
        return list(range(1, available + 1))
    powers = [2 ** k for k in range(available.bit_length()) if 2 ** k < available]
    return powers + [available]


class FixedThreads:
    """A count that is not tuned: given by a variable or `train.threads`, or left as it is."""

    tuning = False

    def __init__(self, count: int, source: str, note: str | None = None):
        self.count, self.source, self.note = count, source, note

    def observe(self, seconds: float, items: int = 1) -> None:
        pass


class ThreadTuner:
    """Picks, and keeps re-checking, the thread count whose training steps run fastest.

    Call `observe(seconds, items)` after every training step; `count` is the count in use.
    `apply(n)` switches (`threads.use_threads` by default; the tests pass a recorder).
    `switches` lists (step, count) for every switch, `explorations` how many there were.
    """

    tuning = True
    note = None

    def __init__(self, candidates: Sequence[int], *, current: int | None = None,
                 apply: Callable[[int], None] = use_threads, start_after: int = 3, trial_steps: int = 5,
                 trial_seconds: float = 2.0, give_up: float = 1.5, window: int = 9, drift: float = 0.3,
                 margin: float = 0.05, recheck_seconds: float = 60.0, max_recheck_seconds: float = 300.0,
                 min_step_seconds: float = 0.005):
        if not candidates or min(candidates) < 1:
            raise ValueError(f"candidates must be positive counts, got {list(candidates)}")
        self.candidates = sorted(set(candidates), reverse=True)
        self.count = current if current is not None else self.candidates[0]
        self.apply = apply
        self.start_after, self.trial_steps, self.window = start_after, trial_steps, window
        self.trial_seconds, self.give_up = trial_seconds, give_up
        self.drift, self.margin, self.min_step_seconds = drift, margin, min_step_seconds
        self.base_recheck, self.max_recheck = recheck_seconds, max_recheck_seconds
        self.recheck_seconds = recheck_seconds
        self.steps = 0
        self.switches: list[tuple[int, int]] = []
        self.explorations = 0
        self.scores: dict[int, float] = {}  # the last exploration's seconds per item, per count
        self.reference: float | None = None  # the kept count's score
        self._recent: deque[tuple[float, int]] = deque(maxlen=window)  # (seconds, items) of the latest steps
        self._since = 0.0  # training seconds since the last exploration (or decision not to explore)
        self._queue: list[int] | None = None  # counts still to try; None when not exploring
        self._trial: list[tuple[float, int]] = []  # (seconds, items) of the steps timed at this count
        self._skip = 0
        self._explored_from = self.count
        self._looked = False  # the first look comes once trial_steps steps are timed
        self._confirming = False

    # -- what the Trainer calls --------------------------------------------------------
    def observe(self, seconds: float, items: int = 1) -> None:
        """One training step took `seconds` for `items` items (tokens, images) at `count` threads."""
        self.steps += 1
        if self.steps <= self.start_after:
            return
        step = (seconds, max(items, 1))
        if self._queue is not None:
            self._exploring(step)
            return
        self._since += seconds
        self._recent.append(step)
        reason = self._due()
        if reason is None:
            return
        self._looked = True
        if min(s for s, _ in self._recent) < self.min_step_seconds:
            self._since = 0.0  # too short to matter; look again after recheck_seconds
            self._recent.clear()
        else:
            self._explore(fresh=reason == "drift")

    # -- the decisions -----------------------------------------------------------------
    def _due(self) -> str | None:
        """Why to look now ("first", "recheck", "drift"), or None."""
        if not self._looked:  # the first look, as soon as there are steps to judge by
            return "first" if len(self._recent) >= self.trial_steps else None
        if self._since >= self.recheck_seconds:
            return "recheck"
        if self.reference is None or len(self._recent) < self.window:
            return None
        now = per_item(self._recent)
        return "drift" if abs(now - self.reference) > self.drift * self.reference else None

    def _explore(self, fresh: bool) -> None:
        """Score the current count (by its latest steps, or, `fresh`, by steps timed from now:
        a drift may be a passing spell), then time each other count in turn."""
        self.explorations += 1
        self._explored_from = self.count
        self._queue = [c for c in self.candidates if c != self.count]
        self._confirming = False
        if fresh:
            self.scores, self._trial, self._skip = {}, [], 0
            return
        self.scores = {self.count: per_item(self._recent)}
        self._next_candidate()

    def _exploring(self, step: tuple[float, int]) -> None:
        if self._skip:
            self._skip -= 1
            return
        self._trial.append(step)
        if len(self._trial) < self.trial_steps:
            return
        score = per_item(self._trial)
        hopeless = bool(self.scores) and score > self.give_up * min(self.scores.values())
        if sum(s for s, _ in self._trial) < self.trial_seconds and not hopeless:
            return
        # confirming: the count we came from, timed again; its better time counts (A B A)
        self.scores[self.count] = min(score, self.scores[self.count]) if self._confirming else score
        self._next_candidate()

    def _next_candidate(self) -> None:
        if self._queue:
            self._switch(self._queue.pop(0))
            self._trial, self._skip = [], 1
            return
        start = self._explored_from
        best = min(self.scores, key=self.scores.get)
        if self.scores[best] > self.scores[start] * (1 - self.margin):
            best = start  # not clearly faster: keep the count we came from
        elif not self._confirming:  # before switching, time the count we came from once more
            self._confirming = True
            self._switch(start)
            self._trial, self._skip = [], 1
            return
        self._queue = None
        # a recheck that keeps the same count waits longer next time; a switch starts over
        self.recheck_seconds = (min(2 * self.recheck_seconds, self.max_recheck) if best == start
                                else self.base_recheck)
        self._switch(best)
        self.reference = self.scores[best]
        self._since = 0.0
        self._recent.clear()

    def _switch(self, count: int) -> None:
        if count != self.count:
            self.apply(count)
            self.count = count
            self.switches.append((self.steps, count))


def for_training(configured: int | None, *, tune: bool = True) -> ThreadTuner | FixedThreads:
    """The Trainer's thread count: an explicit one (applied here), else a tuner (`tune`), else as it is.

    configured: `train.threads`. An environment variable wins over it; when the two differ,
    `note` is the one line that says so.
    """
    explicit = explicit_setting()
    if explicit is not None:
        name, count = explicit
        # OpenBLAS read its own variables when it loaded; NNCTL_NUM_THREADS alone sets it here
        blas = explicit_setting(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"))
        use_threads(blas[1] if blas is not None else count)
        note = None
        if configured is not None and configured != count:
            note = (f"warning: {name}={count} is set, so nnctl trains on {count} thread(s), not train.threads: "
                    f"{configured} (the environment wins; unset {name} to use train.threads)")
        return FixedThreads(count, name, note)
    if configured is not None:
        use_threads(configured)
        return FixedThreads(configured, "train.threads")
    if not tune:
        return FixedThreads(num_threads(), "default")
    return ThreadTuner(candidate_counts(cores()), current=num_threads())
