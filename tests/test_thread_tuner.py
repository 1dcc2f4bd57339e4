"""nnctl.thread_tuner: explicit counts win, the tuner follows fake step times, the count is recorded.

No test here times anything: the tuner is fed the seconds its steps are said to take.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from nnctl import run, thread_tuner, threads
from nnctl.cli import app
from nnctl.thread_tuner import FixedThreads, ThreadTuner, candidate_counts, for_training

VARIABLES = ("NNCTL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


@pytest.fixture
def applied(monkeypatch):
    """No variable set, and the counts the code would apply recorded instead of applied."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    counts: list[int] = []
    monkeypatch.setattr(thread_tuner, "use_threads", counts.append)
    monkeypatch.setattr(threads, "cores", lambda: 4)  # config.py's bound on train.threads
    monkeypatch.setattr(thread_tuner, "cores", lambda: 4)
    return counts


def drive(tuner: ThreadTuner, seconds_at, steps: int) -> list[int]:
    """Feed `steps` steps that take seconds_at(count) each; the count of every step."""
    used = []
    for _ in range(steps):
        used.append(tuner.count)
        tuner.observe(seconds_at(tuner.count), items=700)
    return used


def tuner(**options) -> tuple[ThreadTuner, list[int]]:
    switched: list[int] = []
    options.setdefault("trial_seconds", 0.0)  # trials of trial_steps steps, however short
    return ThreadTuner([1, 2], current=2, apply=switched.append, **options), switched


# -- explicit settings -----------------------------------------------------------------
@pytest.mark.parametrize("name", VARIABLES)
def test_a_variable_fixes_the_count_and_turns_tuning_off(applied, monkeypatch, name):
    monkeypatch.setenv(name, "1")
    choice = for_training(None)
    assert isinstance(choice, FixedThreads) and not choice.tuning
    assert (choice.count, choice.source, choice.note) == (1, name, None)
    assert applied == [1]  # BLAS set to it as well
    choice.observe(5.0, 700)  # nothing to tune: slow steps change nothing
    assert choice.count == 1


def test_nnctl_num_threads_leaves_blas_to_its_own_variable(applied, monkeypatch):
    monkeypatch.setenv("NNCTL_NUM_THREADS", "2")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    choice = for_training(None)
    assert (choice.count, choice.source, applied) == (2, "NNCTL_NUM_THREADS", [1])


def test_train_threads_fixes_the_count(applied):
    choice = for_training(3)
    assert (choice.count, choice.source, choice.tuning, choice.note) == (3, "train.threads", False, None)
    assert applied == [3]


def test_a_variable_wins_over_train_threads_and_one_line_says_so(applied, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    choice = for_training(2)
    assert choice.count == 1 and applied == [1]
    assert "\n" not in choice.note
    assert "OPENBLAS_NUM_THREADS=1" in choice.note and "train.threads: 2" in choice.note
    assert "environment wins" in choice.note
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # the same count: nothing to say
    assert for_training(2).note is None


def test_no_setting_gives_a_tuner_over_every_count(applied):
    choice = for_training(None)
    assert choice.tuning and choice.candidates == [4, 3, 2, 1] and applied == []
    assert isinstance(for_training(None, tune=False), FixedThreads)  # a GPU run, or several processes
    assert candidate_counts(1) == [1] and candidate_counts(2) == [1, 2]
    assert candidate_counts(12) == [1, 2, 4, 8, 12] and candidate_counts(16) == [1, 2, 4, 8, 16]


# -- the tuner, on fake step times -------------------------------------------------------
def test_a_busy_machine_moves_it_to_one_thread():
    t, switched = tuner()
    used = drive(t, {2: 0.40, 1: 0.10}.get, 40)  # one core taken: two threads wait on each other
    # 3 untimed steps, 5 timed at 2, 1 + 5 at 1, 1 + 5 at 2 again (A B A), then 1 for good
    assert t.count == 1 and switched == [1, 2, 1]
    assert used[:8] == [2] * 8 and used[8:14] == [1] * 6 and used[14:20] == [2] * 6 and set(used[20:]) == {1}
    assert t.scores == {2: 0.40 / 700, 1: 0.10 / 700}


def test_an_idle_machine_keeps_every_core():
    t, switched = tuner()
    drive(t, {2: 0.10, 1: 0.16}.get, 40)
    assert t.count == 2 and switched == [1, 2]  # one thread tried, then back
    assert t.explorations == 1


def test_a_count_only_slightly_faster_does_not_win():
    t, switched = tuner()
    drive(t, {2: 0.100, 1: 0.097}.get, 40)  # within the 5% margin
    assert t.count == 2


def test_a_load_that_arrives_is_noticed_from_the_step_times():
    t, switched = tuner()
    load = {"busy": False}
    seconds = lambda count: ({2: 0.40, 1: 0.10} if load["busy"] else {2: 0.10, 1: 0.16})[count]
    drive(t, seconds, 30)
    assert t.count == 2
    load["busy"] = True
    drive(t, seconds, 30)  # 0.4 s steps: far outside the drift band around 0.1 s
    assert t.count == 1 and t.explorations == 2


def test_a_load_that_leaves_is_found_at_the_next_recheck():
    t, switched = tuner(recheck_seconds=10.0, max_recheck_seconds=40.0)
    load = {"busy": True}
    seconds = lambda count: ({2: 0.40, 1: 0.10} if load["busy"] else {2: 0.06, 1: 0.10})[count]
    drive(t, seconds, 30)
    assert t.count == 1
    load["busy"] = False  # one thread runs as fast as before: no drift to see
    drive(t, seconds, 120)  # past 10 s of training at 0.1 s a step
    assert t.count == 2 and switched == [1, 2, 1, 2, 1, 2]  # each switch confirmed (A B A)


def test_a_passing_slow_spell_does_not_move_it():
    t, switched = tuner()
    drive(t, {2: 0.10, 1: 0.16}.get, 30)
    assert t.count == 2 and t.explorations == 1
    spell = iter([0.5] * 9)  # nine slow steps at 2 threads, then the machine is as before
    drive(t, lambda count: next(spell, {2: 0.10, 1: 0.16}[count]), 60)
    assert t.explorations == 2 and t.count == 2  # the look it called for timed 2 afresh


def test_rechecks_that_keep_the_count_come_less_often():
    t, _ = tuner(recheck_seconds=1.0, max_recheck_seconds=4.0)
    drive(t, {2: 0.10, 1: 0.16}.get, 400)  # 40 s of training
    assert t.recheck_seconds == 4.0
    assert 5 <= t.explorations <= 14  # at 1, 2, 4, 4, 4 ... seconds, not every second


def test_short_steps_are_not_tuned():
    t, switched = tuner()
    drive(t, {2: 0.004, 1: 0.001}.get, 200)  # toy sizes: BLAS does not thread these anyway
    assert switched == [] and t.explorations == 0


def test_steps_of_a_few_milliseconds_are_tuned():
    # the CNN with one core busy: 18 ms a step at two threads, 13 at one
    switched: list[int] = []
    t = ThreadTuner([1, 2], current=2, apply=switched.append)  # the defaults, 2 s trials
    used = drive(t, {2: 0.018, 1: 0.013}.get, 2000)
    assert switched[0] == 1 and used[-100:] == [1] * 100


def test_a_trial_lasts_trial_seconds_as_well_as_trial_steps():
    t, switched = tuner(trial_seconds=2.0)
    used = drive(t, {2: 0.10, 1: 0.40}.get, 40)
    # 3 untimed, 5 timed at 2 (the first look), then at 1: one skipped + 5 steps of 0.4 s = 2 s
    assert used[8:14] == [1] * 6 and used[14] == 2 and t.count == 2 and switched == [1, 2]


def test_a_trial_far_slower_than_the_best_ends_after_trial_steps():
    t, switched = tuner(trial_seconds=2.0)
    used = drive(t, {2: 0.20, 1: 0.05}.get, 100)  # one core busy: two threads 4x slower
    # 5 timed at 2 (the first look); at 1: one skipped + 40 steps = 2 s; back at 2 to confirm:
    # one skipped + 5 steps of 0.2 s, 3x the best score, so 1 s instead of 2
    assert used[:8] == [2] * 8 and used[8:49] == [1] * 41 and used[49:55] == [2] * 6
    assert set(used[55:]) == {1} and switched == [1, 2, 1]


def test_a_trial_slower_within_give_up_lasts_trial_seconds():
    t, switched = tuner(trial_seconds=2.0, give_up=1.5)
    used = drive(t, {2: 0.10, 1: 0.14}.get, 40)  # 1.4x slower: it might still be a slow spell
    assert used[8:24] == [1] * 16 and used[24] == 2 and t.count == 2  # one skipped + 15 steps = 2.1 s


def test_steps_that_are_now_fast_now_slow_are_scored_by_their_throughput():
    # two threads on a host whose second core comes and goes: most steps slow, some very fast.
    # Their median (0.20 s) is slower than one thread's 0.15 s, their throughput (0.132 s a step) faster.
    pattern = itertools.cycle([0.20, 0.03, 0.20, 0.03, 0.20])
    switched: list[int] = []
    t = ThreadTuner([1, 2], current=1, apply=switched.append, trial_seconds=2.0)
    used = drive(t, lambda count: next(pattern) if count == 2 else 0.15, 200)
    assert t.count == 2 and used[-50:] == [2] * 50
    assert t.scores[2] < 0.95 * t.scores[1]


def test_items_per_step_are_taken_into_account():
    t, _ = tuner()
    for step in range(40):  # every other batch is half as long; per item, 1 thread is faster
        items = 700 if step % 2 else 350
        t.observe((0.40 if t.count == 2 else 0.10) * items / 700, items)
    assert t.count == 1


def test_one_candidate_is_never_switched():
    switched = []
    t = ThreadTuner([1], apply=switched.append, min_step_seconds=0)
    for _ in range(50):
        t.observe(0.2, 700)
    assert t.count == 1 and switched == [] and t.explorations >= 1


# -- inside a run ------------------------------------------------------------------------
TOY = {"name": "toy", "seed": 3, "data": {"type": "toy_blobs", "batch_size": 16},
       "model": {"type": "toy_softmax"}, "optimizer": {"type": "sgd", "lr": 0.5}, "train": {"epochs": 2}}


class Recorder:
    def __init__(self):
        self.steps, self.messages = [], []

    def on_step(self, info):
        self.steps.append(info)

    def on_message(self, text):
        self.messages.append(text)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_the_count_reaches_progress_and_train_records(applied, tmp_path):
    listener = Recorder()
    result = run.train({**TOY, "train": {"epochs": 2, "threads": 2}}, runs_dir=tmp_path, listener=listener,
                       handle_signals=False)
    assert {info["threads"] for info in listener.steps} == {2}
    train = [r for r in records(result.path) if r["split"] == "train"]
    assert [r["threads"] for r in train] == [2, 2]
    assert "threads 2" in (result.path / "train.log").read_text()  # the plain progress lines
    assert listener.messages == []


def test_a_conflicting_variable_is_one_message_and_training_goes_on(applied, monkeypatch, tmp_path):
    monkeypatch.setenv("NNCTL_NUM_THREADS", "1")
    listener = Recorder()
    result = run.train({**TOY, "train": {"epochs": 1, "threads": 2}}, runs_dir=tmp_path, listener=listener,
                       handle_signals=False)
    assert result.state == "finished"
    assert len(listener.messages) == 1 and "NNCTL_NUM_THREADS=1" in listener.messages[0]
    assert [r["threads"] for r in records(result.path) if r["split"] == "train"] == [1]


def test_a_tuned_run_at_one_thread_equals_an_untuned_one(applied, tmp_path):
    cfg = run.config_mod.resolve(TOY)

    def train(choice):
        exp, trainer = run.build_trainer(cfg)
        trainer.threads = choice
        trainer.fit()
        return [p.data.copy() for p in trainer.params], trainer

    # explores at every look (no step is too short for it) but has only one count to try
    tuned = ThreadTuner([1], apply=applied.append, start_after=0, trial_steps=1, window=2, drift=0.0,
                        recheck_seconds=0.0, min_step_seconds=0.0)
    weights_tuned, trainer = train(tuned)
    weights_fixed, _ = train(FixedThreads(1, "train.threads"))
    assert trainer.threads.explorations > 5
    assert all(np.array_equal(a, b) for a, b in zip(weights_tuned, weights_fixed))


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-2", "5"])
def test_train_threads_out_of_range_is_one_line_naming_the_key(applied, tmp_path, value):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(TOY))
    result = CliRunner().invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs"),
                                      "--set", f"train.threads={value}"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "train: threads" in lines[0] and f"got {value}" in lines[0]
    assert "between 1 and 4" in lines[0]
    assert not (tmp_path / "runs").exists()
