"""Taking turns: nnctl and its peer time short slices of the same work, alternately.

This VM's speed drifts by 10-30% over tens of seconds as other tenants come and go
(benchmarks/README.md). Timing nnctl for 25 s and then the peer for 25 s puts that drift
straight into their ratio. So run.py starts both processes, lets each build and warm
up, and then hands out slices of a few seconds in the order A B B A A B ...: a slow
spell lands on both tools alike, and each throughput is its items over its own seconds.
(A third player, the re-created book code of peers/book_lm.py, joins the LM rounds.)

The protocol is one line each way, over the process's stdin and stdout:

    suite -> process    "train SECONDS" | "eval SECONDS" | "end"
    process -> suite    "READY" (built and warmed up, waiting), then after each slice
                        "SLICE <phase> <items> <seconds>"

Standard library only: benchmarks/worker.py (nnctl's interpreter) and the peer scripts
(the peers' interpreter, which has torch) both import it.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

Step = Callable[[], int]  # one step of work; returns the items it did (tokens, images)


def timed_loop(step: Step, seconds: float) -> tuple[int, float]:
    """Call `step` until `seconds` have passed (at least once): (items, elapsed seconds)."""
    items, t0 = 0, time.perf_counter()
    while True:
        items += step()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return items, elapsed


def serve(phases: dict[str, Callable[[float], tuple[int, float]]], stdin: TextIO = sys.stdin,
          stdout: TextIO = sys.stdout) -> dict[str, list]:
    """Answer the suite's slice requests until "end": {phase: [items, seconds]} summed.

    `phases[name](seconds)` runs one timed slice of that phase and returns (items, seconds).
    """
    totals = {name: [0, 0.0] for name in phases}
    print("READY", file=stdout, flush=True)
    for line in stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "end":
            break
        if words[0] not in phases or len(words) != 2:
            raise SystemExit(f"turns: cannot read {line.strip()!r}; expected 'PHASE SECONDS' or 'end'")
        items, seconds = phases[words[0]](float(words[1]))
        totals[words[0]][0] += items
        totals[words[0]][1] += seconds
        print(f"SLICE {words[0]} {items} {seconds:.6f}", file=stdout, flush=True)
    return totals


def run_alone(phases: dict[str, Callable[[float], tuple[int, float]]],
              seconds: dict[str, float]) -> dict[str, list]:
    """Without a suite: one slice of each phase, in order: {phase: [items, seconds]}."""
    return {name: list(phases[name](seconds[name])) for name in seconds}


def play(phases: dict[str, Callable[[float], tuple[int, float]]], take_turns: bool,
         seconds: dict[str, float]) -> dict[str, list]:
    """serve() when run.py hands out the turns, else run_alone() with these `seconds`."""
    return serve(phases) if take_turns else run_alone(phases, seconds)


def rates(totals: dict[str, list]) -> dict:
    """RESULT fields from play()'s totals: train_/eval_ items, seconds and items per second."""
    out = {}
    for phase, (items, seconds) in totals.items():
        out.update({f"{phase}_per_s": items / seconds if seconds else None, f"{phase}_items": items,
                    f"{phase}_s": seconds})
    return out


def slice_order(slices: int, players: int = 2) -> list[tuple[int, ...]]:
    """The order of the players in each slice, reversed every other slice:
    (0, 1), (1, 0), (0, 1), ... = A B B A A B; with three, A B C C B A A B C."""
    forward = tuple(range(players))
    return [forward if k % 2 == 0 else forward[::-1] for k in range(slices)]
